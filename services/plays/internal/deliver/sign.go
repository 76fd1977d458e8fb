package deliver

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strconv"
	"time"
)

// Sign returns the webhook-signature value for one attempt, "v1,<base64
// HMAC-SHA256 of id.timestamp.body>", as Standard Webhooks defines it. The
// secret is "whsec_" followed by the base64 key.
func Sign(secret, id string, ts time.Time, body []byte) (string, error) {
	key, err := decodeSecret(secret)
	if err != nil {
		return "", err
	}
	return sign(key, id, ts, body), nil
}

func sign(key []byte, id string, ts time.Time, body []byte) string {
	mac := hmac.New(sha256.New, key)
	var tsb [20]byte
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write(strconv.AppendInt(tsb[:0], ts.Unix(), 10))
	mac.Write([]byte{'.'})
	mac.Write(body)
	var sum [sha256.Size]byte
	out := make([]byte, 3+base64.StdEncoding.EncodedLen(sha256.Size))
	copy(out, "v1,")
	base64.StdEncoding.Encode(out[3:], mac.Sum(sum[:0]))
	return string(out)
}
