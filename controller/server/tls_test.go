package server_test

import (
	"context"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"

	"github.com/xlane/xlane/controller/client"
	"github.com/xlane/xlane/controller/server/servertest"
	"github.com/xlane/xlane/controller/te/tetest"
	"github.com/xlane/xlane/controller/tlsconf"
	"github.com/xlane/xlane/controller/tunnels"
	"github.com/xlane/xlane/southbound/memory"
)

// TestMutualTLSIdentity serves the API behind mutual TLS: the service is
// whoever the client certificate names, metadata cannot claim otherwise,
// and a client without a certificate gets nowhere.
func TestMutualTLSIdentity(t *testing.T) {
	dir := t.TempDir()
	if err := tlsconf.WriteTestPKI(dir, "fd", "raft"); err != nil {
		t.Fatal(err)
	}
	p := func(n string) string { return filepath.Join(dir, n) }
	scfg, err := tlsconf.Server(p("server.pem"), p("server-key.pem"), p("ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	ctl, err := tunnels.New(context.Background(), tunnels.Config{Topology: tetest.TwoSwitch(t), Driver: memory.New("s1", "s2")})
	if err != nil {
		t.Fatal(err)
	}
	addr, _ := servertest.Serve(t, ctl, "127.0.0.1:0", grpc.Creds(credentials.NewTLS(scfg)))

	dialAs := func(name, claim string) *client.Client {
		cert, key := "", ""
		if name != "" {
			cert, key = p(name+".pem"), p(name+"-key.pem")
		}
		ccfg, err := tlsconf.Client(cert, key, p("ca.pem"), "127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		c, err := client.Dial(addr, claim, grpc.WithTransportCredentials(credentials.NewTLS(ccfg)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fd := dialAs("fd", "whatever")
	res, err := fd.RequestBandwidth(ctx, tunnels.Request{Sender: h1, Receiver: netip.AddrPortFrom(h2, 7000), LoadsizeBytes: 100, PeriodUs: 100})
	if err != nil {
		t.Fatal(err)
	}
	if got := ctl.Tunnels("fd"); len(got) != 1 || got[0].TunnelID != res.TunnelID {
		t.Fatalf("tunnel not owned by the certificate's subject: %+v", got)
	}
	// raft claims to be fd in metadata: the certificate wins.
	raft := dialAs("raft", "fd")
	wantCode(t, raft.ReleaseBandwidth(ctx, res.TunnelID), codes.PermissionDenied, "another service")
	// No client certificate: the handshake fails.
	anon := dialAs("", "fd")
	if _, err := anon.ListTunnels(ctx); err == nil {
		t.Fatal("client without a certificate was served")
	}
}
