package play

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/cairn-dev/cairn/pkg/apierr"
	"github.com/cairn-dev/cairn/pkg/yamldoc"
)

// Bounds on a plays file, so that one file cannot make applying or
// evaluating it unbounded.
const (
	// MaxFileBytes is the largest file accepted; it is refused before parsing.
	MaxFileBytes = 1 << 20
	// MaxPlays is the most plays in a file.
	MaxPlays = 200
	// MaxDestinations is the most destinations in a file.
	MaxDestinations = 50
	// MaxPlaybooks is the most playbooks a file defines.
	MaxPlaybooks = 50
	// MaxActions is the most actions of one play.
	MaxActions = 20
	// MaxSteps is the most steps of one playbook.
	MaxSteps = 50
	// MaxExprLen is the longest CEL expression, in characters.
	MaxExprLen = 2000
	// MaxText is the longest name or title, in characters.
	MaxText = 200
	// MaxURLLen is the longest URL.
	MaxURLLen = 2048
	// MaxConcurrency is the most deliveries in flight to one destination.
	MaxConcurrency = 64
	// MaxDuration bounds due, offset and cooldown (ten years).
	MaxDuration = 3650 * 24 * time.Hour
	// MaxWindow is the largest renewal window of a step, in days.
	MaxWindow = 3650
)

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,63}$`)

// File is a plays file as written (see the package doc). Parse fills it
// and remembers the line of every field, so that Compile's problems name
// lines too; a File built in code compiles the same, without lines.
type File struct {
	// Destinations are where messages go.
	Destinations []DestinationDef `yaml:"destinations,omitempty" json:"destinations,omitempty"`
	// Plays are the rules; a plays file is recognised by this key.
	Plays []PlayDef `yaml:"plays" json:"plays"`
	// Playbooks are the file's own playbooks, besides the built-in ones.
	Playbooks []PlaybookDef `yaml:"playbooks,omitempty" json:"playbooks,omitempty"`

	lines map[string]int
}

// DestinationDef is one destination as written.
type DestinationDef struct {
	// ID names the destination in actions.
	ID string `yaml:"id" json:"id"`
	// Type is webhook or slack.
	Type string `yaml:"type" json:"type"`
	// URL is where deliveries are posted.
	URL string `yaml:"url" json:"url"`
	// Secret is the Standard Webhooks signing secret ("whsec_" + base64 of
	// 24 to 64 bytes): required for a webhook, refused for slack.
	Secret string `yaml:"secret,omitempty" json:"secret,omitempty"`
	// Concurrency bounds deliveries in flight; 0 means the engine's default.
	Concurrency int `yaml:"concurrency,omitempty" json:"concurrency,omitempty"`
}

// PlayDef is one play as written.
type PlayDef struct {
	ID   string `yaml:"id" json:"id"`
	Name string `yaml:"name,omitempty" json:"name,omitempty"`
	// On lists the trigger kinds the play listens to.
	On []string `yaml:"on" json:"on"`
	// Journey is the journey whose stage changes its stage.entered and
	// stage.exited triggers match; empty means the workspace's default
	// journey (ADR 0023).
	Journey string `yaml:"journey,omitempty" json:"journey,omitempty"`
	// When is CEL over record, account and kind returning bool.
	When string `yaml:"when,omitempty" json:"when,omitempty"`
	// Conditions is CEL over account only returning bool.
	Conditions string `yaml:"conditions,omitempty" json:"conditions,omitempty"`
	// Cooldown keeps the play from running again for the same account.
	Cooldown string `yaml:"cooldown,omitempty" json:"cooldown,omitempty"`
	// Actions run in order when the play matches.
	Actions []ActionDef `yaml:"actions" json:"actions"`
}

// ActionDef is one action as written: exactly one key is set.
type ActionDef struct {
	Task     *TaskDef    `yaml:"task,omitempty" json:"task,omitempty"`
	Slack    *SendDef    `yaml:"slack,omitempty" json:"slack,omitempty"`
	Webhook  *SendDef    `yaml:"webhook,omitempty" json:"webhook,omitempty"`
	Content  *ContentDef `yaml:"content,omitempty" json:"content,omitempty"`
	Playbook string      `yaml:"playbook,omitempty" json:"playbook,omitempty"`
}

// TaskDef creates a task for an owner.
type TaskDef struct {
	Title string `yaml:"title" json:"title"`
	// Owner is csm, ae, sdr, pool:<pool_id> or owner:<owner_id>.
	Owner string `yaml:"owner" json:"owner"`
	// Due is how long the owner has, e.g. "4h"; the app counts it in business time.
	Due string `yaml:"due,omitempty" json:"due,omitempty"`
}

// SendDef sends the triggering record to a destination.
type SendDef struct {
	Destination string `yaml:"destination" json:"destination"`
}

// ContentDef sends a piece of content (a link) to a destination.
type ContentDef struct {
	Destination string `yaml:"destination" json:"destination"`
	ContentID   string `yaml:"content_id" json:"content_id"`
	URL         string `yaml:"url,omitempty" json:"url,omitempty"`
}

// PlaybookDef is a playbook as written.
type PlaybookDef struct {
	ID    string    `yaml:"id" json:"id"`
	Name  string    `yaml:"name,omitempty" json:"name,omitempty"`
	Steps []StepDef `yaml:"steps" json:"steps"`
}

// StepDef is one step of a playbook as written.
type StepDef struct {
	// Offset is when the step falls due relative to the playbook's anchor
	// ("0d", "14d", "-30d"); empty means 0.
	Offset string `yaml:"offset,omitempty" json:"offset,omitempty"`
	// Window, when set, limits the step to runs anchored on that renewal
	// window (days before contract end: 120, 90, 60, 30).
	Window int    `yaml:"window,omitempty" json:"window,omitempty"`
	Title  string `yaml:"title" json:"title"`
	Owner  string `yaml:"owner" json:"owner"`
	Due    string `yaml:"due,omitempty" json:"due,omitempty"`
	// Bands, when set, limits the step to accounts in one of these bands.
	Bands []string `yaml:"bands,omitempty" json:"bands,omitempty"`
	// SkipIf is CEL over account, evaluated when the step falls due.
	SkipIf string `yaml:"skip_if,omitempty" json:"skip_if,omitempty"`
}

// IsPlays reports whether data looks like a plays file: a YAML mapping
// with a top-level plays key. It does not validate anything.
func IsPlays(data []byte) bool {
	if len(data) > MaxFileBytes {
		return bytes.Contains(data, []byte("\nplays:")) || bytes.HasPrefix(data, []byte("plays:"))
	}
	var top map[string]yaml.Node
	if err := yaml.Unmarshal(data, &top); err != nil {
		return false
	}
	_, ok := top["plays"]
	return ok
}

// Parse decodes a plays file and checks everything that needs neither CEL
// nor the references between its parts (Compile checks those). The error
// is an *Error listing every problem found.
//
// Anchors and aliases are refused outright rather than capped: plays files
// are short, and refusing them removes alias bombs and the question of
// which line an expanded value belongs to.
func Parse(data []byte) (*File, error) {
	f, ps, fatal := decode(data)
	if !fatal {
		validate(f, ps)
	}
	if err := ps.err(); err != nil {
		return nil, err
	}
	return f, nil
}

// decode reads data into a File. fatal means there is no File to check
// further: the problems say why.
func decode(data []byte) (*File, *problems, bool) {
	ps := &problems{typed: map[string]bool{}}
	fail := func(line int, path, format string, args ...any) (*File, *problems, bool) {
		ps.list = append(ps.list, Problem{Line: line, Path: path, Message: fmt.Sprintf(format, args...)})
		return nil, ps, true
	}
	if len(data) > MaxFileBytes {
		return fail(0, "", "file is %d bytes; the limit is 1 MiB", len(data))
	}
	if err := yamldoc.Check(data); err != nil {
		var ye *yamldoc.Error
		if errors.As(err, &ye) {
			return fail(ye.Line, ye.Path, "%s", ye.Reason)
		}
		return fail(0, "", "%v", err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		line, msg := yamlLine(strings.TrimPrefix(err.Error(), "yaml: "))
		return fail(line, "", "YAML: %s", msg)
	}
	if len(doc.Content) == 0 {
		return fail(0, "", "the file is empty; a plays file has a top-level plays key")
	}
	top := doc.Content[0]
	if top.Kind != yaml.MappingNode {
		return fail(top.Line, "", "want a mapping with a top-level plays key")
	}
	if n := firstAlias(&doc); n != nil {
		return fail(n.Line, "", "YAML anchors and aliases are not supported in a plays file: write the value out")
	}
	idx := &lineIndex{lines: map[string]int{}, keys: map[int][]string{}, tags: map[string]string{}, values: map[string]string{}}
	idx.walk(top, "", 0)
	ps.lines = idx.lines
	hasPlays := false
	for i := 0; i+1 < len(top.Content); i += 2 {
		if top.Content[i].Value == "plays" {
			hasPlays = true
		}
	}
	if !hasPlays {
		ps.list = append(ps.list, Problem{Line: top.Line, Path: "plays", Message: "required: a plays file is recognised by its top-level plays key"})
	}

	f := &File{lines: idx.lines}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(f); err != nil {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			line, msg := yamlLine(strings.TrimPrefix(err.Error(), "yaml: "))
			return fail(line, "", "YAML: %s", msg)
		}
		for _, e := range te.Errors {
			line, msg := yamlLine(e)
			path, msg := idx.explain(line, msg)
			if path != "" {
				ps.typed[path] = true
			}
			ps.list = append(ps.list, Problem{Line: line, Path: path, Message: msg})
		}
	}
	// The decoder truncates a float into an int field: refuse it instead.
	for _, p := range slices.Sorted(maps.Keys(idx.tags)) {
		if idx.tags[p] != "!!float" {
			continue
		}
		if strings.HasSuffix(p, ".concurrency") || strings.HasSuffix(p, ".window") {
			ps.list = append(ps.list, Problem{Line: idx.lines[p], Path: p, Message: "got " + clip(idx.values[p]) + ", want a whole number"})
			ps.typed[p] = true
		}
	}
	return f, ps, false
}

var linePrefix = regexp.MustCompile(`^line (\d+): `)

// yamlLine splits "line 5: message" into 5 and "message".
func yamlLine(msg string) (int, string) {
	m := linePrefix.FindStringSubmatch(msg)
	if m == nil {
		return 0, msg
	}
	n, _ := strconv.Atoi(m[1])
	return n, msg[len(m[0]):]
}

func firstAlias(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		return n
	}
	for _, c := range n.Content {
		if a := firstAlias(c); a != nil {
			return a
		}
	}
	return nil
}

// lineIndex maps field paths to lines, and lines to the paths of the keys
// written on them (to name the field of a decoder error).
type lineIndex struct {
	lines map[string]int
	keys  map[int][]string
	// tags are the YAML tags of the values ("!!seq", "!!str"), by path.
	tags map[string]string
	// values are the scalar values, by path.
	values map[string]string
}

func (x *lineIndex) walk(n *yaml.Node, path string, depth int) {
	if depth > 64 {
		return // deeper than any field of a plays file
	}
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			if _, seen := x.lines[p]; !seen {
				x.lines[p] = k.Line
			}
			x.keys[k.Line] = append(x.keys[k.Line], p)
			x.tags[p] = n.Content[i+1].ShortTag()
			x.values[p] = n.Content[i+1].Value
			x.walk(n.Content[i+1], p, depth+1)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			p := path + "[" + strconv.Itoa(i) + "]"
			x.lines[p] = c.Line
			x.keys[c.Line] = append(x.keys[c.Line], p)
			x.tags[p] = c.ShortTag()
			x.values[p] = c.Value
			x.walk(c, p, depth+1)
		}
	}
}

var (
	unknownField = regexp.MustCompile(`^field (\S+) not found in type (\S+)$`)
	unmarshal    = regexp.MustCompile("^cannot unmarshal (!!\\w+)(?: `(.*)`)? into (\\S+)$")
)

// defTypes are the structs the decoder names in its errors, for listing the
// fields they have.
var defTypes = map[string]reflect.Type{}

func init() {
	for _, v := range []any{File{}, DestinationDef{}, PlayDef{}, ActionDef{}, TaskDef{}, SendDef{}, ContentDef{}, PlaybookDef{}, StepDef{}} {
		t := reflect.TypeOf(v)
		defTypes[t.String()] = t
	}
}

// goType is the Go type that decodes the field at path, as the decoder's
// errors name it ("string", "[]play.ActionDef"); "" when path names none.
func goType(path string) string {
	t := reflect.TypeOf(File{})
	for path != "" {
		if t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if path[0] == '[' {
			end := strings.IndexByte(path, ']')
			if end < 0 || t.Kind() != reflect.Slice {
				return ""
			}
			t, path = t.Elem(), path[end+1:]
			continue
		}
		path = strings.TrimPrefix(path, ".")
		end := strings.IndexAny(path, ".[")
		if end < 0 {
			end = len(path)
		}
		name := path[:end]
		path = path[end:]
		if t.Kind() != reflect.Struct {
			return ""
		}
		found := false
		for i := 0; i < t.NumField(); i++ {
			if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); tag == name {
				t, found = t.Field(i).Type, true
				break
			}
		}
		if !found {
			return ""
		}
	}
	return t.String()
}

func fieldNames(t reflect.Type) []string {
	var out []string
	for i := 0; i < t.NumField(); i++ {
		if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); tag != "" {
			out = append(out, tag)
		}
	}
	return out
}

// explain turns a decoder error at line into a field path and a message
// that names no Go type.
func (x *lineIndex) explain(line int, msg string) (string, string) {
	cands := x.keys[line]
	if m := unknownField.FindStringSubmatch(msg); m != nil {
		path := ""
		for _, c := range cands {
			if c == m[1] || strings.HasSuffix(c, "."+m[1]) {
				path = c
				break
			}
		}
		out := fmt.Sprintf("unknown field %q", m[1])
		if t, ok := defTypes[m[2]]; ok {
			out += "; want one of " + strings.Join(fieldNames(t), ", ")
		}
		return path, out
	}
	path := ""
	for _, c := range cands {
		if len(c) > len(path) {
			path = c
		}
	}
	if m := unmarshal.FindStringSubmatch(msg); m != nil {
		// The value on the line with that tag, value (which the decoder
		// cuts to 7 characters and "...") and Go type: in
		// "- {title: t, name: {a: b}, actions: [{slack: {destination: x}}]}"
		// it is name, the only mapping there that a string field holds.
		value, cut := strings.CutSuffix(m[2], "...")
		for _, c := range cands {
			if x.tags[c] != m[1] || goType(c) != m[3] {
				continue
			}
			if v := x.values[c]; m[2] == "" || v == value || (cut && strings.HasPrefix(v, value)) {
				path = c
			}
		}
		want := m[3]
		switch {
		case strings.HasPrefix(want, "[]"):
			want = "a list"
		case want == "string":
			want = "a string"
		case want == "int":
			want = "a whole number"
		default:
			want = "a mapping"
		}
		return path, fmt.Sprintf("got %s, want %s", tagName(m[1]), want)
	}
	return path, msg
}

func tagName(tag string) string {
	switch tag {
	case "!!seq":
		return "a list"
	case "!!map":
		return "a mapping"
	case "!!str":
		return "a string"
	case "!!int":
		return "a number"
	case "!!bool":
		return "a boolean"
	case "!!float":
		return "a number"
	}
	return tag
}

// validate checks f for everything but CEL and references.
func validate(f *File, ps *problems) {
	if len(f.Destinations) > MaxDestinations {
		ps.add("destinations", "%d destinations; the limit is %d", len(f.Destinations), MaxDestinations)
	}
	seen := map[string]bool{}
	for i, d := range f.Destinations {
		p := fmt.Sprintf("destinations[%d]", i)
		checkID(ps, p+".id", d.ID, seen, "destination")
		switch d.Type {
		case TypeWebhook:
			if d.Secret == "" {
				ps.add(p+".secret", "required for a webhook: a Standard Webhooks secret, \"whsec_\" followed by base64")
			} else if err := checkSecret(d.Secret); err != nil {
				ps.add(p+".secret", "%v", err)
			}
		case TypeSlack:
			if d.Secret != "" {
				ps.add(p+".secret", "a slack destination takes no secret (the URL is its credential)")
			}
		case "":
			ps.add(p+".type", "required: webhook or slack")
		default:
			ps.add(p+".type", "unknown type %q; want webhook or slack", clip(d.Type))
		}
		if err := checkURL(d.URL, d.Type == TypeSlack); err != nil {
			ps.add(p+".url", "%v", err)
		}
		if d.Concurrency < 0 || d.Concurrency > MaxConcurrency {
			ps.add(p+".concurrency", "must be 1 to %d (or left out for the default)", MaxConcurrency)
		}
	}

	if len(f.Plays) > MaxPlays {
		ps.add("plays", "%d plays; the limit is %d", len(f.Plays), MaxPlays)
	}
	seen = map[string]bool{}
	for i, pl := range f.Plays {
		p := fmt.Sprintf("plays[%d]", i)
		checkID(ps, p+".id", pl.ID, seen, "play")
		checkText(ps, p+".name", pl.Name, false)
		if len(pl.On) == 0 {
			ps.add(p+".on", "required: one or more of %s", strings.Join(kinds, ", "))
		}
		on := map[string]bool{}
		for j, k := range pl.On {
			switch {
			case !IsKind(k):
				ps.add(fmt.Sprintf("%s.on[%d]", p, j), "unknown trigger kind %q; want one of %s", clip(k), strings.Join(kinds, ", "))
			case on[k]:
				ps.add(fmt.Sprintf("%s.on[%d]", p, j), "%s is listed twice", k)
			}
			on[k] = true
		}
		if pl.Journey != "" {
			// A journey only narrows stage changes: status and every other
			// trigger are the account's, whatever the journey.
			checkRef(ps, p+".journey", pl.Journey)
			if !on[StageEntered] && !on[StageExited] {
				ps.add(p+".journey", "selects the stage changes of stage.entered and stage.exited; on lists neither")
			}
		}
		checkExprLen(ps, p+".when", pl.When)
		checkExprLen(ps, p+".conditions", pl.Conditions)
		if pl.Cooldown != "" {
			if _, err := parseDuration(pl.Cooldown, false); err != nil {
				ps.add(p+".cooldown", "%v", err)
			}
		}
		switch n := len(pl.Actions); {
		case n == 0:
			ps.add(p+".actions", "required: at least one action")
		case n > MaxActions:
			ps.add(p+".actions", "%d actions; the limit is %d", n, MaxActions)
		}
		for j, a := range pl.Actions {
			validateAction(ps, fmt.Sprintf("%s.actions[%d]", p, j), a)
		}
	}

	if len(f.Playbooks) > MaxPlaybooks {
		ps.add("playbooks", "%d playbooks; the limit is %d", len(f.Playbooks), MaxPlaybooks)
	}
	seen = map[string]bool{}
	for i, pb := range f.Playbooks {
		p := fmt.Sprintf("playbooks[%d]", i)
		if isBuiltin(pb.ID) {
			ps.add(p+".id", "%q is a built-in playbook; choose another id", pb.ID)
		} else {
			checkID(ps, p+".id", pb.ID, seen, "playbook")
		}
		checkText(ps, p+".name", pb.Name, false)
		switch n := len(pb.Steps); {
		case n == 0:
			ps.add(p+".steps", "required: at least one step")
		case n > MaxSteps:
			ps.add(p+".steps", "%d steps; the limit is %d", n, MaxSteps)
		}
		for j, s := range pb.Steps {
			validateStep(ps, fmt.Sprintf("%s.steps[%d]", p, j), s)
		}
	}
}

func validateAction(ps *problems, p string, a ActionDef) {
	var set []string
	if a.Task != nil {
		set = append(set, ActionTask)
	}
	if a.Slack != nil {
		set = append(set, ActionSlack)
	}
	if a.Webhook != nil {
		set = append(set, ActionWebhook)
	}
	if a.Content != nil {
		set = append(set, ActionContent)
	}
	if a.Playbook != "" {
		set = append(set, ActionPlaybook)
	}
	switch len(set) {
	case 0:
		ps.add(p, "empty action: want one of task, slack, webhook, content, playbook")
		return
	case 1:
	default:
		ps.add(p, "one action per list item; this one has %s", strings.Join(set, " and "))
		return
	}
	switch {
	case a.Task != nil:
		checkText(ps, p+".task.title", a.Task.Title, true)
		checkOwner(ps, p+".task.owner", a.Task.Owner)
		checkDue(ps, p+".task.due", a.Task.Due)
	case a.Slack != nil:
		checkRef(ps, p+".slack.destination", a.Slack.Destination)
	case a.Webhook != nil:
		checkRef(ps, p+".webhook.destination", a.Webhook.Destination)
	case a.Content != nil:
		checkRef(ps, p+".content.destination", a.Content.Destination)
		if !idPattern.MatchString(a.Content.ContentID) {
			ps.add(p+".content.content_id", "must match %s", idPattern)
		}
		if a.Content.URL != "" {
			if err := checkURL(a.Content.URL, false); err != nil {
				ps.add(p+".content.url", "%v", err)
			}
		}
	default:
		checkRef(ps, p+".playbook", a.Playbook)
	}
}

func validateStep(ps *problems, p string, s StepDef) {
	if s.Offset != "" {
		if _, err := parseDuration(s.Offset, true); err != nil {
			ps.add(p+".offset", "%v", err)
		}
	}
	if s.Window < 0 || s.Window > MaxWindow {
		ps.add(p+".window", "must be 1 to %d days (or left out)", MaxWindow)
	}
	checkText(ps, p+".title", s.Title, true)
	checkOwner(ps, p+".owner", s.Owner)
	checkDue(ps, p+".due", s.Due)
	seen := map[string]bool{}
	for k, b := range s.Bands {
		switch {
		case !isBand(b):
			ps.add(fmt.Sprintf("%s.bands[%d]", p, k), "unknown band %q; want healthy, neutral or at_risk", clip(b))
		case seen[b]:
			ps.add(fmt.Sprintf("%s.bands[%d]", p, k), "%s is listed twice", b)
		}
		seen[b] = true
	}
	checkExprLen(ps, p+".skip_if", s.SkipIf)
}

func isBand(b string) bool {
	for _, x := range bands {
		if b == x {
			return true
		}
	}
	return false
}

func checkID(ps *problems, path, id string, seen map[string]bool, what string) {
	switch {
	case !idPattern.MatchString(id):
		ps.add(path, "must match %s", idPattern)
	case seen[id]:
		ps.add(path, "duplicate %s id %q", what, id)
	}
	seen[id] = true
}

func checkRef(ps *problems, path, id string) {
	if !idPattern.MatchString(id) {
		ps.add(path, "must be an id matching %s", idPattern)
	}
}

func checkText(ps *problems, path, s string, required bool) {
	switch {
	case s == "" && required:
		ps.add(path, "required")
	case utf8.RuneCountInString(s) > MaxText:
		ps.add(path, "longer than %d characters", MaxText)
	case !utf8.ValidString(s):
		ps.add(path, "not valid UTF-8")
	case strings.ContainsFunc(s, unicode.IsControl):
		ps.add(path, "contains a control character")
	}
}

func checkExprLen(ps *problems, path, expr string) {
	if n := utf8.RuneCountInString(expr); n > MaxExprLen {
		ps.add(path, "expression is %d characters; the limit is %d", n, MaxExprLen)
	}
}

func checkDue(ps *problems, path, due string) {
	if due == "" {
		return
	}
	d, err := parseDuration(due, false)
	switch {
	case err != nil:
		ps.add(path, "%v", err)
	case d == 0:
		ps.add(path, "must be more than 0 (or left out for no due date)")
	}
}

func checkOwner(ps *problems, path, s string) {
	if _, err := ParseOwner(s); err != nil {
		ps.add(path, "%v", err)
	}
}

// Owner is who a task or step goes to: Role csm, ae or sdr (the account's
// owner of that team), pool (ID is a routing pool), or owner (ID is an owner).
type Owner struct {
	Role string
	ID   string
}

// String writes the owner as in a plays file.
func (o Owner) String() string {
	if o.ID != "" {
		return o.Role + ":" + o.ID
	}
	return o.Role
}

// ParseOwner reads csm, ae, sdr, pool:<pool_id> or owner:<owner_id>.
func ParseOwner(s string) (Owner, error) {
	switch s {
	case RoleCSM, RoleAE, RoleSDR:
		return Owner{Role: s}, nil
	case "":
		return Owner{}, errors.New("required: csm, ae, sdr, pool:<pool_id> or owner:<owner_id>")
	}
	role, id, ok := strings.Cut(s, ":")
	if !ok || (role != RolePool && role != RoleOwner) {
		return Owner{}, fmt.Errorf("owner %q: want csm, ae, sdr, pool:<pool_id> or owner:<owner_id>", clip(s))
	}
	switch {
	case id == "":
		return Owner{}, fmt.Errorf("owner %q: the %s id is missing", clip(s), role)
	case len(id) > apierr.MaxID:
		return Owner{}, fmt.Errorf("owner %q: the %s id is longer than %d characters", clip(s), role, apierr.MaxID)
	case !utf8.ValidString(id) || strings.ContainsFunc(id, func(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }):
		return Owner{}, fmt.Errorf("owner %q: the %s id has spaces, control characters or invalid UTF-8", clip(s), role)
	}
	return Owner{Role: role, ID: id}, nil
}

// checkSecret checks a Standard Webhooks secret without ever echoing it.
func checkSecret(s string) error {
	b64, ok := strings.CutPrefix(s, "whsec_")
	if !ok {
		return errors.New(`malformed secret: want "whsec_" followed by base64 (Standard Webhooks)`)
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return errors.New(`malformed secret: the part after "whsec_" is not standard base64`)
	}
	if len(key) < 24 || len(key) > 64 {
		return fmt.Errorf("malformed secret: its key is %d bytes; want 24 to 64", len(key))
	}
	return nil
}

// checkURL checks the form of a URL; the address policy is the app's
// checkURL, called by Compile. Messages never repeat the URL: a Slack
// webhook URL is a credential.
func checkURL(raw string, httpsOnly bool) error {
	if raw == "" {
		return errors.New("required")
	}
	if len(raw) > MaxURLLen {
		return fmt.Errorf("longer than %d characters", MaxURLLen)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return errors.New("not a valid URL")
	}
	switch {
	case u.Scheme != "https" && (httpsOnly || u.Scheme != "http"):
		if httpsOnly {
			return errors.New("must be an https URL")
		}
		return errors.New("must be an http or https URL")
	case u.Host == "" || u.Hostname() == "":
		return errors.New("has no host")
	case u.User != nil:
		return errors.New("must not carry a user name or password")
	}
	return nil
}

// clip shortens a value quoted back in a message.
func clip(s string) string {
	if len(s) > 64 {
		i := 64
		for i > 0 && !utf8.RuneStart(s[i]) {
			i--
		}
		return s[:i] + "…"
	}
	return s
}

// ParseDuration reads a duration written as whole numbers with units s, m,
// h, d (24 hours) and w, e.g. "4h", "2d", "1w", "1d12h", "-30d". It is
// how due, offset and cooldown are read.
func ParseDuration(s string) (time.Duration, error) { return parseDuration(s, true) }

func parseDuration(s string, negative bool) (time.Duration, error) {
	bad := func() (time.Duration, error) {
		return 0, fmt.Errorf(`duration %q: want a whole number and a unit (s, m, h, d, w), e.g. "4h", "2d" or "1w"`, clip(s))
	}
	rest, neg := strings.CutPrefix(s, "-")
	if rest == "" {
		return bad()
	}
	var total time.Duration
	for rest != "" {
		i := 0
		for i < len(rest) && rest[i] >= '0' && rest[i] <= '9' {
			i++
		}
		if i == 0 || i == len(rest) || i > 10 {
			return bad()
		}
		n, err := strconv.ParseInt(rest[:i], 10, 64)
		if err != nil {
			return bad()
		}
		var unit time.Duration
		switch rest[i] {
		case 's':
			unit = time.Second
		case 'm':
			unit = time.Minute
		case 'h':
			unit = time.Hour
		case 'd':
			unit = 24 * time.Hour
		case 'w':
			unit = 7 * 24 * time.Hour
		default:
			return bad()
		}
		if n > int64(MaxDuration/unit) {
			return 0, fmt.Errorf("duration %q: longer than %d days", clip(s), MaxDuration/(24*time.Hour))
		}
		total += time.Duration(n) * unit
		if total > MaxDuration {
			return 0, fmt.Errorf("duration %q: longer than %d days", clip(s), MaxDuration/(24*time.Hour))
		}
		rest = rest[i+1:]
	}
	if neg {
		if !negative {
			return 0, fmt.Errorf("duration %q: must not be negative", clip(s))
		}
		total = -total
	}
	return total, nil
}

// FormatDuration writes d as ParseDuration reads it, in the largest whole
// units: "2d", "1w", "36h", "-30d".
func FormatDuration(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	var b strings.Builder
	if d < 0 {
		b.WriteByte('-')
		d = -d
	}
	for _, u := range []struct {
		unit time.Duration
		name string
	}{{7 * 24 * time.Hour, "w"}, {24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}} {
		if n := d / u.unit; n > 0 {
			b.WriteString(strconv.FormatInt(int64(n), 10) + u.name)
			d -= n * u.unit
		}
	}
	return b.String()
}
