package server

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/cairn-dev/cairn/gen/openapi"
	"github.com/cairn-dev/cairn/services/gateway/internal/web"
)

// trackingFragment describes the Segment-compatible endpoints, which are
// plain HTTP handlers (internal/tracking) that protoc-gen-openapiv2 does
// not see. OpenAPI expands each of its paths into a full operation.
//
//go:embed openapi_tracking.json
var trackingFragment []byte

// apiDescription is the document's description: the conventions every
// operation follows (docs/api.md says the same at more length).
const apiDescription = `REST/JSON facade of Cairn's gRPC services (ingestion, stages, health, routing), plus the Segment-compatible tracking endpoints.

Keys: every call carries an API key as "Authorization: Bearer <key>"; the key fixes the workspace and the role.

Errors: every error, from any endpoint, is a google.rpc.Status as grpc-gateway writes it: {"code": <gRPC code as an integer>, "message": "...", "details": [...]}. The HTTP status follows the code (3 INVALID_ARGUMENT: 400, 5 NOT_FOUND: 404, 16 UNAUTHENTICATED: 401, 7 PERMISSION_DENIED: 403, 8 RESOURCE_EXHAUSTED: 429, 14 UNAVAILABLE: 503; a body over the size limit is 413 with code 3). details holds a google.rpc.BadRequest naming each bad field or query parameter, a google.rpc.RetryInfo whenever the client should wait (429 and 503 also carry Retry-After), and always a google.rpc.RequestInfo whose requestId matches the X-Request-Id header. Internal failures say only "internal error"; quote the request id when reporting one.

Query parameters: an enum filter takes the value's short form (band=at_risk, sort=arr, status=customer) or its full name (BAND_AT_RISK), in any case. An unknown value, or a parameter that does not parse, is a 400 naming the parameter.

Responses are protobuf JSON (protojson) with these conventions: fields at their default (empty strings and lists, zero counts, false) are left out; enums are full value names; timestamps are RFC 3339 in UTC; 64-bit integers are JSON numbers; durations are seconds with an "s" suffix, rounded to the millisecond ("90.5s"); a list's page.totalSize is present only when the service knows the total, and page.nextPageToken only when another page follows (pass it back as page.pageToken).`

// OpenAPI returns the document served at /openapi.json: the generated one
// (gen/openapi) with the tracking endpoints merged in, and amended to say
// what the gateway really answers: 64-bit integers as numbers, the short
// forms of enum query parameters, totalSize absent when unknown, and the
// error shape.
func OpenAPI() ([]byte, error) {
	var doc map[string]any
	if err := json.Unmarshal(openapi.JSON, &doc); err != nil {
		return nil, fmt.Errorf("openapi: generated document: %w", err)
	}
	var frag map[string]any
	if err := json.Unmarshal(trackingFragment, &frag); err != nil {
		return nil, fmt.Errorf("openapi: tracking fragment: %w", err)
	}
	info := object(doc, "info")
	info["description"] = apiDescription
	doc["tags"] = append(list(doc["tags"]), list(frag["tags"])...)
	for k, v := range object(frag, "securityDefinitions") {
		object(doc, "securityDefinitions")[k] = v
	}
	defs := object(doc, "definitions")
	for k, v := range object(frag, "definitions") {
		defs[k] = v
	}
	paths := object(doc, "paths")
	for p, item := range object(frag, "paths") {
		op := object(item.(map[string]any), "post")
		paths[p] = map[string]any{"post": trackingOperation(p, op)}
	}
	if st, ok := defs["rpcStatus"].(map[string]any); ok {
		st["description"] = "The body of every error: a google.rpc.Status. code is the gRPC code as an integer; details are google.rpc error details (BadRequest, RetryInfo, RequestInfo, ...), each with its \"@type\"."
	}
	if pr, ok := defs["v1PageResponse"].(map[string]any); ok {
		if ts, ok := object(pr, "properties")["totalSize"].(map[string]any); ok {
			ts["description"] = "Total matching items, present only when the service knows it (0 included)."
		}
	}
	numbers64(doc)
	enums := enumsByValue()
	for _, item := range paths {
		for _, op := range item.(map[string]any) {
			op, ok := op.(map[string]any)
			if !ok {
				continue
			}
			for _, p := range list(op["parameters"]) {
				if p, ok := p.(map[string]any); ok && p["in"] == "query" {
					shortForms(p, enums)
				}
			}
		}
	}
	return json.MarshalIndent(doc, "", "  ")
}

// trackingOperation expands a path of the tracking fragment.
func trackingOperation(path string, op map[string]any) map[string]any {
	typ, _ := op["x-call-type"].(string)
	body := "#/definitions/trackingCall"
	if typ == "batch" {
		body = "#/definitions/trackingBatch"
	}
	tag := "Tracking"
	if _, alias := op["x-alias-of"]; alias {
		tag = "Tracking (analytics.js short paths)"
	}
	errResp := func(d string) map[string]any {
		return map[string]any{"description": d, "schema": map[string]any{"$ref": "#/definitions/rpcStatus"}}
	}
	out := map[string]any{
		"summary":     op["summary"],
		"operationId": "Tracking_" + strings.TrimPrefix(path, "/v1/"),
		"tags":        []any{tag},
		"consumes":    []any{"application/json", "text/plain"},
		"security":    []any{map[string]any{"writeKey": []any{}}, map[string]any{"bearer": []any{}}},
		"parameters": []any{map[string]any{
			"name": "body", "in": "body", "required": true,
			"schema": map[string]any{"$ref": body},
		}},
		"responses": map[string]any{
			"200":     map[string]any{"description": "The request was read; rejected lists the events that were not stored.", "schema": map[string]any{"$ref": "#/definitions/trackingResponse"}},
			"400":     errResp("The body is not the JSON document the endpoint expects."),
			"401":     errResp("No write key, or a key not recognized."),
			"403":     errResp("The key may not send events."),
			"413":     errResp("The body (or its inflated form) is over the size limit."),
			"429":     errResp("Rate limited or over the admission bounds; wait Retry-After seconds."),
			"default": errResp("An error, as a google.rpc.Status."),
		},
	}
	for k, v := range op {
		if strings.HasPrefix(k, "x-") {
			out[k] = v
		}
	}
	return out
}

// numbers64 marks every 64-bit integer of the document as a JSON integer:
// protoc-gen-openapiv2 says string, as protojson writes them, but the
// gateway writes numbers (web.JSON).
func numbers64(v any) {
	switch v := v.(type) {
	case map[string]any:
		if f, _ := v["format"].(string); (f == "int64" || f == "uint64") && v["type"] == "string" {
			v["type"] = "integer"
		}
		for _, c := range v {
			numbers64(c)
		}
	case []any:
		for _, c := range v {
			numbers64(c)
		}
	}
}

// shortForms adds the short forms of an enum query parameter's values to
// its enum list, as web.QueryParser accepts them.
func shortForms(p map[string]any, enums map[string][]protoreflect.EnumDescriptor) {
	target := p
	if p["type"] == "array" {
		target, _ = p["items"].(map[string]any)
	}
	if target == nil {
		return
	}
	values := list(target["enum"])
	if len(values) == 0 {
		return
	}
	first, _ := values[0].(string)
	for _, ed := range enums[first] {
		if !hasAll(ed, values) {
			continue
		}
		var short []any
		var names []string
		for _, v := range values {
			if ev := ed.Values().ByName(protoreflect.Name(v.(string))); ev != nil {
				short = append(short, web.ShortName(ev))
				names = append(names, web.ShortName(ev))
			}
		}
		target["enum"] = append(short, values...)
		desc, _ := p["description"].(string)
		if desc != "" {
			desc += "\n\n"
		}
		p["description"] = desc + "One of " + strings.Join(names, ", ") + " (or the full value name, e.g. " + first + "); an unknown value is a 400."
		return
	}
}

func hasAll(ed protoreflect.EnumDescriptor, values []any) bool {
	for _, v := range values {
		s, _ := v.(string)
		if ed.Values().ByName(protoreflect.Name(s)) == nil {
			return false
		}
	}
	return true
}

// enumsByValue indexes the enums of Cairn's API by their value names.
func enumsByValue() map[string][]protoreflect.EnumDescriptor {
	out := map[string][]protoreflect.EnumDescriptor{}
	add := func(eds protoreflect.EnumDescriptors) {
		for i := range eds.Len() {
			ed := eds.Get(i)
			for j := range ed.Values().Len() {
				n := string(ed.Values().Get(j).Name())
				out[n] = append(out[n], ed)
			}
		}
	}
	var walk func(mds protoreflect.MessageDescriptors)
	walk = func(mds protoreflect.MessageDescriptors) {
		for i := range mds.Len() {
			add(mds.Get(i).Enums())
			walk(mds.Get(i).Messages())
		}
	}
	protoregistry.GlobalFiles.RangeFiles(func(fd protoreflect.FileDescriptor) bool {
		if strings.HasPrefix(string(fd.Package()), "cairn.") {
			add(fd.Enums())
			walk(fd.Messages())
		}
		return true
	})
	for _, eds := range out {
		slices.SortFunc(eds, func(a, b protoreflect.EnumDescriptor) int {
			return strings.Compare(string(a.FullName()), string(b.FullName()))
		})
	}
	return out
}

// object returns m[key] as an object, creating it when missing.
func object(m map[string]any, key string) map[string]any {
	o, ok := m[key].(map[string]any)
	if !ok {
		o = map[string]any{}
		m[key] = o
	}
	return o
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}
