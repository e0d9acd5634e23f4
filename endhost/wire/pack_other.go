//go:build !amd64

package wire

func addOne(p *Packer, ch uint16, msg []byte) error { return addOneGo(p, ch, msg) }
