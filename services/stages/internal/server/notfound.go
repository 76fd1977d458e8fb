package server

import (
	"errors"
	"fmt"

	"github.com/cairn-dev/cairn/pkg/apierr"
)

// journeyNotFound replaces the store's error chain in a NotFound about a
// journey ("get journey \"j\" v9: ...: not found") with what the caller
// asked for; apierr would otherwise send the whole chain as the message.
func journeyNotFound(err error, id string, version uint32) error {
	if !errors.Is(err, apierr.ErrNotFound) {
		return err
	}
	switch {
	case id == "":
		return apierr.NotFound("the workspace has no active journey")
	case version > 0:
		return apierr.NotFound("journey %q v%d not found", id, version)
	}
	return apierr.NotFound("journey %q not found, or it has no active version", id)
}

// accountNotFound is journeyNotFound for an account's journey state.
func accountNotFound(err error, id, account string) error {
	if !errors.Is(err, apierr.ErrNotFound) {
		return err
	}
	in := "the workspace's journey"
	if id != "" {
		in = fmt.Sprintf("journey %q", id)
	}
	return apierr.NotFound("account %q not found in %s (unknown, or not placed yet)", account, in)
}
