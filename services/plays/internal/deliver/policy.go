package deliver

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// internal lists ranges that are not the public internet beyond what
// netip's predicates cover. Webhook URLs are written by tenants, so without
// this a URL could make the server call its own metadata service, admin
// ports or neighbours.
var internal = []struct {
	p      netip.Prefix
	reason string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "this-network (0.0.0.0/8)"},
	{netip.MustParsePrefix("100.64.0.0/10"), "carrier-grade NAT (100.64.0.0/10)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignments (192.0.0.0/24)"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking (198.18.0.0/15)"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved (240.0.0.0/4)"},
	{netip.MustParsePrefix("::/96"), "IPv4-compatible IPv6 (::/96)"},
	{netip.MustParsePrefix("fec0::/10"), "site-local IPv6 (fec0::/10)"},
}

// nat64 embeds an IPv4 address in its last 32 bits; a NAT64 gateway on the
// path would carry a connection to that IPv4 address.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// check returns why a may not be reached, or nil.
func (p Policy) check(a netip.Addr) error {
	a = a.Unmap().WithZone("")
	for _, pf := range p.Allow {
		if pf.Contains(a) {
			return nil
		}
	}
	if p.AllowPrivate {
		return nil
	}
	if reason := internalReason(a); reason != "" {
		return fmt.Errorf("address %s is %s and refused by the delivery address policy", a, reason)
	}
	return nil
}

func internalReason(a netip.Addr) string {
	switch {
	case !a.IsValid():
		return "invalid"
	case a.IsUnspecified():
		return "unspecified"
	case a.IsLoopback():
		return "loopback"
	case a.IsPrivate():
		return "private"
	case a.IsLinkLocalUnicast():
		return "link-local"
	case a.IsMulticast():
		return "multicast"
	}
	for _, r := range internal {
		if r.p.Contains(a) {
			return r.reason
		}
	}
	if nat64.Contains(a) {
		b := a.As16()
		if r := internalReason(netip.AddrFrom4([4]byte(b[12:]))); r != "" {
			return "NAT64 of " + r
		}
	}
	return ""
}

// newTransport returns the transport deliveries use by default. Its
// dialer checks every address it is about to connect to, after DNS: a
// check of the name at apply time alone would be defeated by a name that
// later resolves (rebinds) to an internal address. It uses no proxy,
// since through a proxy the dialer would check the proxy, not the
// receiver.
func newTransport(p Policy) *http.Transport {
	d := &net.Dialer{
		Timeout:   10 * time.Second,
		KeepAlive: 30 * time.Second,
		Control: func(network, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil {
				return fmt.Errorf("refusing to dial unparsable address %q", address)
			}
			return p.check(ap.Addr())
		},
	}
	return &http.Transport{
		Proxy:                 nil,
		DialContext:           d.DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   maxConcurrency,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
}

// CheckURL reports why raw cannot be a delivery URL, or nil. It runs when
// a destination is applied: http or https, no credentials, a host, and no
// literal address (or "localhost") that p refuses. Names are checked again
// at connect time by the transport, after they resolve.
func CheckURL(raw string, p Policy) error {
	if raw == "" {
		return errors.New("URL is empty")
	}
	if len(raw) > maxURLBytes {
		return fmt.Errorf("URL is longer than %d bytes", maxURLBytes)
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the URL, which may be a secret (Slack).
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("URL does not parse: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		if u.Scheme == "" {
			return errors.New("URL has no scheme; use http:// or https://")
		}
		return fmt.Errorf("scheme %q is not allowed; use http or https", u.Scheme)
	}
	if u.Opaque != "" {
		return errors.New("URL is not absolute; want http(s)://host/path")
	}
	if u.User != nil {
		return errors.New("URL must not carry credentials (user:password@); put them in the path or use the signing secret")
	}
	host := u.Hostname()
	if host == "" {
		return errors.New("URL has no host")
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("port %q is not between 1 and 65535", port)
		}
	}
	if a, err := netip.ParseAddr(host); err == nil {
		return p.check(a)
	}
	name := strings.ToLower(strings.TrimSuffix(host, "."))
	if name == "localhost" || strings.HasSuffix(name, ".localhost") {
		// RFC 6761: these names are loopback.
		if p.check(netip.IPv6Loopback()) != nil && p.check(netip.AddrFrom4([4]byte{127, 0, 0, 1})) != nil {
			return fmt.Errorf("host %q is loopback and refused by the delivery address policy", host)
		}
		return nil
	}
	// Resolvers (the C library's among them) read forms such as "127.1",
	// "2130706433" or "0x7f.0.0.1" as IPv4 addresses. No public name ends
	// in a numeric label, so such hosts are refused rather than guessed at.
	labels := strings.Split(name, ".")
	if last := labels[len(labels)-1]; isNumericLabel(last) {
		return fmt.Errorf("host %q looks like a non-standard IP address; write the address in dotted form", host)
	}
	return nil
}

func isNumericLabel(s string) bool {
	if s == "" {
		return false
	}
	if strings.HasPrefix(s, "0x") {
		return true
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}
