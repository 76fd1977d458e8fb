// Package deliver sends the plays service's outbox messages to webhook and
// Slack receivers over HTTP.
//
// # Where it sits
//
// The app decides, once per trigger and inside a bbolt transaction, which
// messages to send, and writes them to a durable outbox. Only then are they
// handed to an Engine with Enqueue. The Engine attempts them and reports
// every outcome (Delivered, Retrying with the next attempt time, Dead) to
// the app's Recorder, which makes it durable. On start the app enqueues
// every outbox row that is not finished. The Engine itself stores nothing:
// the outbox is the only truth, so a crash at any point loses no message.
//
// # Guarantees
//
// At-least-once, with a stable id. A message is finished only when the
// Recorder has durably written a Delivered or Dead outcome; a crash before
// that means the row is still pending and is sent again after restart. A
// receiver can therefore see a message twice (for example when the process
// dies between the receiver's 2xx and the record), and every attempt of a
// message carries the same webhook-id so that the receiver can drop the
// duplicate. Exactly-once over HTTP is not possible without the receiver's
// help; the stable id is that help.
//
// Signed. Webhook destinations get Standard Webhooks headers (webhook-id,
// webhook-timestamp of the attempt, webhook-signature over
// "id.timestamp.body" with the destination's secret), so a receiver can
// check origin and freshness with any Standard Webhooks library. Slack
// incoming webhooks authenticate by their secret URL and get a plain JSON
// POST.
//
// Ordered per account. Within one destination, an account's messages are
// attempted in Seq order, and the next one only after the previous one's
// final outcome (Delivered or Dead) has been recorded. Waiting for the
// record, not just the answer, means a crash cannot leave a later message
// delivered and an earlier one pending. A retrying message blocks only its
// own account; other accounts on the same destination proceed.
//
// Isolated per destination. Each destination has its own queue, lock,
// dispatcher and concurrency limit, and no lock is held during HTTP, so a
// receiver that is down or hangs uses up only its own capacity.
//
// Bounded retries. 2xx is delivered. 429, 5xx, 408, 409, 425, redirects
// (never followed) and network errors or timeouts are retried with
// exponential backoff and full jitter, so that messages that failed
// together do not return together; on 429 and 503 a Retry-After is used as
// the delay instead. Other 4xx mean the receiver refuses this message, and
// retrying would not change its mind: the message is Dead at once with the
// status as its last error. A message still failing Horizon after its
// creation is Dead; its last attempt is made at the horizon, and a message
// that waited past it (an outage of ours or an open breaker) is given up
// without another attempt.
//
// Circuit breaker. After BreakerFailures consecutive retryable failures a
// destination's breaker opens: no attempts for BreakerCooldown, then one
// probe. A dead receiver thus costs one request per cooldown rather than
// one per message, and waiting messages do not use up attempts meanwhile.
//
// Safe network access. Destination URLs are tenant input, so the default
// transport refuses, at connect time, loopback, private, link-local,
// unspecified, multicast, CGNAT and other internal addresses unless the
// Policy allows them. Checking the resolved address when connecting, not
// the name when configuring, defeats DNS rebinding; redirects are not
// followed so they cannot lead elsewhere; and at most MaxResponseBytes of a
// response is read.
//
// Group commit of outcomes. One goroutine calls the Recorder with every
// outcome that finished since its previous call (up to 1024), so the app's
// fsync is shared by many deliveries. If the Recorder fails, the batch is
// retried with backoff and nothing it holds is released meanwhile.
//
// Time. Backoff, Retry-After, breaker cooldowns, the horizon and the
// webhook-timestamp all use the injected clock, so tests drive them with a
// manual clock. Per-attempt network timeouts are real time.
package deliver
