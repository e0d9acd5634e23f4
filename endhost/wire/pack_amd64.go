package wire

// addOne is Packer.Add in assembly for every message that fits: no stack
// frame, no bounds checks (NewPacker and SetMax keep the buffer long
// enough for max chunks), and a jump, not a call, to addSpan for the rest.
//
//go:noescape
func addOne(p *Packer, ch uint16, msg []byte) error
