package wsqueue

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gorilla "github.com/gorilla/websocket"
)

// testPKI is a CA made for the test and a server certificate it signed for
// 127.0.0.1 and localhost, as PEM.
type testPKI struct {
	roots           *x509.CertPool
	certPEM, keyPEM []byte
	caPEM           []byte
	otherKeyPEM     []byte // a key that belongs to no certificate here
}

func newTestPKI(t *testing.T) *testPKI {
	t.Helper()
	key := func() (*ecdsa.PrivateKey, []byte) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return k, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	caKey, _ := key()
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "wsqueue Go test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, srvKeyPEM := key()
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	_, other := key()
	roots := x509.NewCertPool()
	roots.AddCert(caCert)
	return &testPKI{
		roots:       roots,
		certPEM:     pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}),
		keyPEM:      srvKeyPEM,
		caPEM:       pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		otherKeyPEM: other,
	}
}

func (p *testPKI) dialer() *gorilla.Dialer {
	return &gorilla.Dialer{TLSClientConfig: &tls.Config{RootCAs: p.roots, NextProtos: []string{"http/1.1"}}, HandshakeTimeout: 10 * time.Second}
}

func TestListenServesWsAndWssSideBySide(t *testing.T) {
	pki := newTestPKI(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "server.pem"), filepath.Join(dir, "server.key")
	if err := os.WriteFile(certFile, pki.certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pki.keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	s := listenForTest(t, Config{TLSListen: "127.0.0.1:0", TLSCertChainFile: certFile, TLSPrivateKeyFile: keyFile})
	acceptLoop(s, echoLoop)
	addrs := s.Addrs()
	if len(addrs) != 2 {
		t.Fatalf("Addrs() = %v, want the ws:// and the wss:// address", addrs)
	}
	secure, _, err := pki.dialer().Dial("wss://"+addrs[1].String()+"/", nil)
	if err != nil {
		t.Fatalf("wss dial: %v", err)
	}
	defer secure.Close()
	if state, ok := secure.UnderlyingConn().(*tls.Conn); !ok || state.ConnectionState().NegotiatedProtocol != "http/1.1" {
		t.Fatalf("not TLS, or ALPN not http/1.1: %T", secure.UnderlyingConn())
	}
	plain := dial(t, "ws://"+addrs[0].String()+"/")
	for _, c := range []*gorilla.Conn{secure, plain} {
		want := []byte(strings.Repeat("echo over both ", 5000))
		if err := c.WriteMessage(gorilla.BinaryMessage, want); err != nil {
			t.Fatal(err)
		}
		_, got, err := c.ReadMessage()
		if err != nil || string(got) != string(want) {
			t.Fatalf("echo: %v (%d bytes back of %d)", err, len(got), len(want))
		}
	}
}

func TestListenWssOnlyFromPEMBytesAndBadCertificatesFail(t *testing.T) {
	pki := newTestPKI(t)
	s, err := Listen("", Config{TLSListen: "127.0.0.1:0", TLSCertChainPEM: pki.certPEM, TLSPrivateKeyPEM: pki.keyPEM, ReactorThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	acceptLoop(s, echoLoop)
	c, _, err := pki.dialer().Dial("wss://"+s.Addr().String()+"/", nil)
	if err != nil {
		t.Fatalf("wss dial: %v", err)
	}
	if err := c.WriteMessage(gorilla.TextMessage, []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if _, got, err := c.ReadMessage(); err != nil || string(got) != "hi" {
		t.Fatalf("echo: %q %v", got, err)
	}
	c.Close()
	// A ws:// client on the wss:// port does not get a WebSocket.
	if _, _, err := gorilla.DefaultDialer.Dial("ws://"+s.Addr().String()+"/", nil); err == nil {
		t.Fatal("a plain client upgraded on the TLS port")
	}

	for name, cfg := range map[string]Config{
		"missing file":   {TLSListen: "127.0.0.1:0", TLSCertChainFile: "/nonexistent/chain.pem", TLSPrivateKeyPEM: pki.keyPEM},
		"not PEM":        {TLSListen: "127.0.0.1:0", TLSCertChainPEM: []byte("no"), TLSPrivateKeyPEM: pki.keyPEM},
		"key mismatch":   {TLSListen: "127.0.0.1:0", TLSCertChainPEM: pki.certPEM, TLSPrivateKeyPEM: pki.otherKeyPEM},
		"CA as the leaf": {TLSListen: "127.0.0.1:0", TLSCertChainPEM: pki.caPEM, TLSPrivateKeyPEM: pki.keyPEM},
	} {
		s2, err := Listen("127.0.0.1:0", cfg)
		if err == nil {
			s2.Close()
			t.Errorf("%s: Listen succeeded", name)
			continue
		}
		if !strings.Contains(err.Error(), "TLS") {
			t.Errorf("%s: %v, want a TLS configuration error", name, err)
		}
	}
}
