// Package personalizeevents is a stand-in for the AWS SDK's Amazon
// Personalize Events client with the surface rudder-server uses; see
// go.mod for why it exists. Every call fails.
package personalizeevents

import (
	"context"
	"errors"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/aws/aws-sdk-go-v2/service/personalizeevents/types"
)

var errUnavailable = errors.New("personalizeevents: not available in this benchmark build of rudder-server")

// Options are the client's options (none are used).
type Options struct{}

// Client fails every call.
type Client struct{}

// NewFromConfig returns a client that fails every call.
func NewFromConfig(aws.Config, ...func(*Options)) *Client { return &Client{} }

type PutEventsInput struct {
	EventList  []types.Event
	SessionId  *string
	TrackingId *string
	UserId     *string
}

type PutEventsOutput struct{}

type PutUsersInput struct {
	DatasetArn *string
	Users      []types.User
}

type PutUsersOutput struct{}

type PutItemsInput struct {
	DatasetArn *string
	Items      []types.Item
}

type PutItemsOutput struct{}

func (*Client) PutEvents(context.Context, *PutEventsInput, ...func(*Options)) (*PutEventsOutput, error) {
	return nil, errUnavailable
}

func (*Client) PutUsers(context.Context, *PutUsersInput, ...func(*Options)) (*PutUsersOutput, error) {
	return nil, errUnavailable
}

func (*Client) PutItems(context.Context, *PutItemsInput, ...func(*Options)) (*PutItemsOutput, error) {
	return nil, errUnavailable
}
