package wire

// addOne is Packer.Add in assembly for every message that fits: no stack
// frame, no bounds checks (NewPacker and SetMax keep the buffer long
// enough for max chunks), and a jump, not a call, to addSpan for the rest.
//
//go:noescape
func addOne(p *Packer, ch uint16, msg []byte) error

// addRun adds messages from the start of msgs as addOne would, in one
// loop, until one does not fit what is left (full) or is not addOne's to
// write, and returns how many it added.
//
//go:noescape
func addRun(p *Packer, ch uint16, msgs [][]byte) (n int, full bool)
