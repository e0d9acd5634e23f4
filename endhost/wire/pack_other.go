//go:build !amd64

package wire

func addOne(p *Packer, ch uint16, msg []byte) error { return addOneGo(p, ch, msg) }

func addRun(p *Packer, ch uint16, msgs [][]byte) (int, bool) { return addRunGo(p, ch, msgs) }
