// Package types holds the stand-in's request types.
package types

import "time"

type MetricAttribution struct {
	EventAttributionSource *string
}

type Event struct {
	EventType         *string
	SentAt            *time.Time
	EventId           *string
	EventValue        *float32
	Impression        []string
	ItemId            *string
	MetricAttribution *MetricAttribution
	Properties        *string
	RecommendationId  *string
}

type User struct {
	UserId     *string
	Properties *string
}

type Item struct {
	ItemId     *string
	Properties *string
}
