package wire

// addOne is the one-chunk path of Packer.Add in assembly: no stack frame,
// no bounds checks (NewPacker and SetMax keep the buffer long enough for
// max chunks), and a jump, not a call, to addSpan for everything else.
//
//go:noescape
func addOne(p *Packer, ch uint16, msg []byte) error
