package deliver

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

func TestCheckURL(t *testing.T) {
	private := Policy{AllowPrivate: true}
	metadata := Policy{Allow: []netip.Prefix{netip.MustParsePrefix("169.254.169.254/32")}}
	tests := []struct {
		url    string
		p      Policy
		errHas string // "" = accepted
	}{
		{"https://example.com/hook", Policy{}, ""},
		{"http://example.com:8080/hook?x=1", Policy{}, ""},
		{"HTTPS://Example.COM/hook", Policy{}, ""},
		{"https://93.184.215.14/hook", Policy{}, ""},
		{"https://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/hook", Policy{}, ""},
		{"http://127.0.0.1/x", Policy{}, "loopback"},
		{"http://127.0.0.1/x", private, ""},
		{"http://localhost", Policy{}, "loopback"},
		{"http://LOCALHOST.:8080/", Policy{}, "loopback"},
		{"http://api.localhost/", Policy{}, "loopback"},
		{"http://localhost", private, ""},
		{"http://localhost", Policy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, ""},
		{"http://[::1]", Policy{}, "loopback"},
		{"http://[::1]:9000/h", private, ""},
		{"http://[::ffff:127.0.0.1]/", Policy{}, "loopback"},
		{"http://169.254.169.254", Policy{}, "link-local"},
		{"http://169.254.169.254/latest", metadata, ""},
		{"http://[fe80::1%25eth0]/", Policy{}, "link-local"},
		{"http://10.1.2.3/", Policy{}, "private"},
		{"http://172.16.0.1/", Policy{}, "private"},
		{"http://192.168.1.1/", Policy{}, "private"},
		{"http://[fd00::1]/", Policy{}, "private"},
		{"http://100.64.0.1/", Policy{}, "carrier-grade NAT"},
		{"http://0.0.0.0/", Policy{}, "unspecified"},
		{"http://[::]/", Policy{}, "unspecified"},
		{"http://224.0.0.1/", Policy{}, "multicast"},
		{"http://255.255.255.255/", Policy{}, "reserved"},
		{"http://[64:ff9b::a00:1]/", Policy{}, "NAT64 of private"},
		{"http://127.1/", Policy{}, "non-standard IP"},
		{"http://2130706433/", Policy{}, "non-standard IP"},
		{"http://0x7f.0.0.1/", Policy{}, "non-standard IP"},
		{"ftp://x", Policy{}, `scheme "ftp"`},
		{"javascript:alert(1)", Policy{}, "scheme"},
		{"http:opaque", Policy{}, "not absolute"},
		{"//example.com/x", Policy{}, "no scheme"},
		{"example.com/x", Policy{}, "no scheme"},
		{"http://user:pw@host", Policy{}, "credentials"},
		{"http://user@host", Policy{}, "credentials"},
		{"http://", Policy{}, "no host"},
		{"http:///path", Policy{}, "no host"},
		{"http://:80/", Policy{}, "no host"},
		{"http://example.com:0/", Policy{}, "port"},
		{"http://example.com:99999/", Policy{}, "port"},
		{"", Policy{}, "empty"},
		{"http://exa mple.com/", Policy{}, "does not parse"},
		{"http://[::1/", Policy{}, "does not parse"},
		{"https://example.com/" + strings.Repeat("a", 3000), Policy{}, "longer than"},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			err := CheckURL(tc.url, tc.p)
			if tc.errHas == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted, want an error mentioning %q", tc.errHas)
			}
			if !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("error %q, want it to mention %q", err, tc.errHas)
			}
		})
	}
}

func TestCheckURLHidesSecretURL(t *testing.T) {
	const secret = "T000/B000/XXXXSECRETXXXX"
	err := CheckURL("https://hooks.slack.com/services/"+secret+"%zz", Policy{})
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Fatalf("error %v, want one that does not repeat the URL", err)
	}
}

// FuzzCheckURL: CheckURL never panics, and what it accepts is something
// the transport can be pointed at: http(s), a host, no credentials, no
// refused literal address.
func FuzzCheckURL(f *testing.F) {
	for _, s := range []string{
		"https://example.com/hook", "http://127.0.0.1/x", "http://localhost", "http://[::1]",
		"http://169.254.169.254", "ftp://x", "http://user:pw@host", "http://[fe80::1%25eth0]:80/",
		"http://0x7f.1/", "http://[::ffff:10.0.0.1]/", "http:opaque", "", "http://a:99999999999999999999/",
		"http://%zz/", "http://[64:ff9b::7f00:1]/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if CheckURL(raw, Policy{}) != nil {
			return
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("accepted %q, which does not parse: %v", raw, err)
		}
		if (u.Scheme != "http" && u.Scheme != "https") || u.User != nil || u.Hostname() == "" {
			t.Fatalf("accepted %q", raw)
		}
		if a, err := netip.ParseAddr(u.Hostname()); err == nil && internalReason(a.Unmap().WithZone("")) != "" {
			t.Fatalf("accepted internal address in %q", raw)
		}
		if _, err := http.NewRequest(http.MethodPost, raw, nil); err != nil {
			t.Fatalf("accepted %q, which net/http refuses: %v", raw, err)
		}
	})
}

func TestPolicyCheck(t *testing.T) {
	tests := []struct {
		addr    string
		p       Policy
		refused bool
	}{
		{"8.8.8.8", Policy{}, false},
		{"2001:4860:4860::8888", Policy{}, false},
		{"127.0.0.1", Policy{}, true},
		{"127.255.0.9", Policy{}, true},
		{"::1", Policy{}, true},
		{"::ffff:127.0.0.1", Policy{}, true},
		{"::ffff:8.8.8.8", Policy{}, false},
		{"10.0.0.1", Policy{}, true},
		{"172.31.255.255", Policy{}, true},
		{"172.32.0.1", Policy{}, false},
		{"192.168.0.1", Policy{}, true},
		{"fc00::1", Policy{}, true},
		{"169.254.169.254", Policy{}, true},
		{"fe80::1", Policy{}, true},
		{"0.0.0.0", Policy{}, true},
		{"0.1.2.3", Policy{}, true},
		{"::", Policy{}, true},
		{"224.0.0.251", Policy{}, true},
		{"ff02::1", Policy{}, true},
		{"100.64.0.1", Policy{}, true},
		{"100.127.255.255", Policy{}, true},
		{"100.128.0.1", Policy{}, false},
		{"64:ff9b::808:808", Policy{}, false},
		{"64:ff9b::7f00:1", Policy{}, true},
		{"10.0.0.1", Policy{AllowPrivate: true}, false},
		{"10.0.0.1", Policy{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")}}, false},
		{"10.0.1.1", Policy{Allow: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/24")}}, true},
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			err := tc.p.check(netip.MustParseAddr(tc.addr))
			if (err != nil) != tc.refused {
				t.Fatalf("check = %v, want refused %v", err, tc.refused)
			}
		})
	}
}

// TestTransportRefusesAtDial: the check runs on the resolved address when
// connecting, whatever the URL said.
func TestTransportRefusesAtDial(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("request reached the receiver")
	}))
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	port := u.Port()
	for _, host := range []string{"127.0.0.1", "localhost"} {
		tr := newTransport(Policy{})
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, "http://"+host+":"+port+"/", nil)
		resp, err := tr.RoundTrip(req)
		if err == nil {
			_ = resp.Body.Close()
			t.Fatalf("%s: request went through", host)
		}
		if !strings.Contains(err.Error(), "refused by the delivery address policy") {
			t.Errorf("%s: error %v", host, err)
		}
		tr.CloseIdleConnections()
	}
}
