package server

import (
	"context"
	"strconv"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// utf8Checked wraps every upstream so that a request holding a string that
// is not valid UTF-8 is refused as InvalidArgument naming the field. Path
// and query parameters and JSON bodies are checked before they get here;
// this is the net under them for any other way a REST mapping could put
// such a string into a request. grpc-go fails to marshal it and answers
// Internal, so the request is only walked after an Internal error.
func (u Upstreams) utf8Checked() Upstreams {
	out := Upstreams{
		Ingestion: utf8Conn{u.Ingestion}, Stages: utf8Conn{u.Stages},
		Health: utf8Conn{u.Health}, Routing: utf8Conn{u.Routing},
	}
	if u.Plays != nil {
		out.Plays = utf8Conn{u.Plays}
	}
	return out
}

type utf8Conn struct {
	grpc.ClientConnInterface
}

func (c utf8Conn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	err := c.ClientConnInterface.Invoke(ctx, method, args, reply, opts...)
	if status.Code(err) != codes.Internal {
		return err
	}
	m, ok := args.(proto.Message)
	if !ok {
		return err
	}
	field, bad := invalidUTF8(m.ProtoReflect(), "", 0)
	if !bad {
		return err
	}
	st := status.New(codes.InvalidArgument, field+": not valid UTF-8")
	if d, derr := st.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
		{Field: field, Description: "not valid UTF-8"},
	}}); derr == nil {
		st = d
	}
	return st.Err()
}

// invalidUTF8 returns the path of the first string field (or map key) of m
// that is not valid UTF-8. Requests built from REST calls are shallow; depth
// stops the walk of anything that is not.
func invalidUTF8(m protoreflect.Message, prefix string, depth int) (string, bool) {
	if depth > 100 {
		return "", false
	}
	var (
		path string
		bad  bool
	)
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		name := prefix + string(fd.Name())
		switch {
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len() && !bad; i++ {
				path, bad = invalidValue(fd, l.Get(i), name+"["+strconv.Itoa(i)+"]", depth)
			}
		case fd.IsMap():
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				ks := k.String()
				if !utf8.ValidString(ks) {
					path, bad = name, true
					return false
				}
				path, bad = invalidValue(fd.MapValue(), mv, name+"["+strconv.Quote(ks)+"]", depth)
				return !bad
			})
		default:
			path, bad = invalidValue(fd, v, name, depth)
		}
		return !bad
	})
	return path, bad
}

func invalidValue(fd protoreflect.FieldDescriptor, v protoreflect.Value, path string, depth int) (string, bool) {
	switch fd.Kind() {
	case protoreflect.StringKind:
		if !utf8.ValidString(v.String()) {
			return path, true
		}
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return invalidUTF8(v.Message(), path+".", depth+1)
	}
	return "", false
}
