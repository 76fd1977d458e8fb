package play

import (
	"bytes"
	"net/url"

	"gopkg.in/yaml.v3"
)

// Redacted replaces a credential in what Redact returns.
const Redacted = "<redacted>"

// Redact returns a plays file with its credentials replaced by Redacted:
// every destination's secret, and the path and query of a Slack URL (the
// URL of a Slack incoming webhook is itself the credential). Comments and
// layout are kept. A file that does not parse comes back as Redacted, whole:
// nothing unparsed is shown.
func Redact(data string) string {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(data), &doc); err != nil || len(doc.Content) == 0 {
		return Redacted
	}
	root := doc.Content[0]
	if dests := mapValue(root, "destinations"); dests != nil && dests.Kind == yaml.SequenceNode {
		for _, d := range dests.Content {
			if s := mapValue(d, "secret"); s != nil {
				s.Value, s.Tag, s.Style = Redacted, "!!str", 0
			}
			if t := mapValue(d, "type"); t != nil && t.Value == TypeSlack {
				if u := mapValue(d, "url"); u != nil {
					u.Value, u.Tag, u.Style = redactURL(u.Value), "!!str", 0
				}
			}
		}
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return Redacted
	}
	return b.String()
}

// redactURL keeps a URL's scheme and host, so a reader can tell which
// service it is, and hides the rest.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return Redacted
	}
	return u.Scheme + "://" + u.Host + "/" + Redacted
}

// mapValue is the value of key in mapping n, or nil.
func mapValue(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}
