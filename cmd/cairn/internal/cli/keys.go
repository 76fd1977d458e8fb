package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/cairn-dev/cairn/pkg/auth"
)

const keysUsage = `Usage: cairn keys <subcommand> [flags]

Subcommands:
  create   create a key: keys create --role write|read|admin|service --workspace W,
           or a cluster-wide service key: keys create --role service --cluster-wide
  list     list the keys in the keyring (ids, roles, workspaces; never tokens)
  revoke   revoke a key by id: keys revoke KEY_ID

The keyring is <data>/keys.json (--data, default ./data), or --keys FILE; the
services reload it when it changes. cairn keys <subcommand> -h lists its flags.
`

func runKeys(_ context.Context, env *Env, args []string) error {
	if len(args) == 0 {
		return usagef("name a subcommand: create, list or revoke")
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(env.Stdout, keysUsage)
		return nil
	case "create":
		return keysCreate(env, args[1:])
	case "list":
		return keysList(env, args[1:])
	case "revoke":
		return keysRevoke(env, args[1:])
	}
	return usagef("unknown subcommand %q: want create, list or revoke", args[0])
}

// keyringFlags are the flags every keys subcommand takes.
type keyringFlags struct {
	data, keys, output string
	formats            []string
}

func addKeyringFlags(fs *flag.FlagSet, formats ...string) *keyringFlags {
	k := &keyringFlags{formats: formats}
	fs.StringVar(&k.data, "data", "./data", "data directory; the keyring defaults to <data>/keys.json")
	fs.StringVar(&k.keys, "keys", "", "keyring file shared with the services (default <data>/keys.json)")
	fs.StringVar(&k.output, "o", "table", "output format: "+orList(formats))
	return k
}

func (k *keyringFlags) load() (*auth.Keyring, error) {
	if !contains(k.formats, k.output) {
		return nil, usagef("-o must be %s, not %q", orList(k.formats), k.output)
	}
	path := k.keys
	if path == "" {
		path = filepath.Join(k.data, "keys.json")
	}
	kr, err := auth.LoadKeyring(path)
	if err != nil {
		return nil, fmt.Errorf("load keyring: %w", err)
	}
	return kr, nil
}

func keysCreate(env *Env, args []string) error {
	fs := helpFlagSet(env, "keys create", "keys create --role write|read|admin|service (--workspace W | --cluster-wide) [--data DIR | --keys FILE] [-o table|json]")
	role := fs.String("role", "", "role of the new key: write, read, admin or service")
	workspace := fs.String("workspace", "", "workspace the key belongs to and is limited to")
	clusterWide := fs.Bool("cluster-wide", false, "a service key for every workspace, which may also Subscribe to the logs (the services' own key); every call made with it is counted and logged")
	k := addKeyringFlags(fs, "table", "json")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	r, err := auth.ParseRole(*role)
	if err != nil {
		return usagef("--role: %v", err)
	}
	switch {
	case *clusterWide && r != auth.RoleService:
		return usagef("--cluster-wide is only for service keys; a%s %s key needs --workspace", article(r.String()), r)
	case *clusterWide && *workspace != "":
		return usagef("--cluster-wide and --workspace exclude each other: a key is bound to one workspace or to none")
	case *workspace == "" && r == auth.RoleService && !*clusterWide:
		// A key for every tenant is never made by forgetting a flag.
		return usagef("--workspace W binds the service key to W; --cluster-wide makes one for every workspace (the services' own)")
	case *workspace == "" && r != auth.RoleService:
		return usagef("--workspace is required for a%s %s key", article(r.String()), r)
	}
	kr, err := k.load()
	if err != nil {
		return err
	}
	token, err := kr.Create(*workspace, r)
	if err != nil {
		return err
	}
	if k.output == "json" {
		return writeJSON(env.Stdout, map[string]any{"token": token, "role": r.String(), "workspace": *workspace, "cluster_wide": *clusterWide, "keys_file": kr.Path()})
	}
	fmt.Fprintln(env.Stdout, token)
	if *clusterWide {
		fmt.Fprintf(env.Stderr, "created a cluster-wide service key in %s: it acts on every workspace; the token is shown only once\n", kr.Path())
	} else {
		fmt.Fprintf(env.Stderr, "created a%s %s key for workspace %q in %s; the token is shown only once\n", article(r.String()), r, *workspace, kr.Path())
	}
	return nil
}

// article is "n" before a vowel sound: "an admin key", "a read key".
func article(word string) string {
	if word != "" && (word[0] == 'a' || word[0] == 'e' || word[0] == 'i' || word[0] == 'o' || word[0] == 'u') {
		return "n"
	}
	return ""
}

// keyView is a key as `keys list -o json` prints it: never the hash.
type keyView struct {
	ID          string    `json:"id"`
	Role        string    `json:"role"`
	Workspace   string    `json:"workspace"`
	ClusterWide bool      `json:"cluster_wide"`
	CreatedAt   time.Time `json:"created_at"`
}

// clusterWide is what the WORKSPACE column shows for a cluster-wide key.
const clusterWideColumn = "(cluster-wide)"

func keysList(env *Env, args []string) error {
	fs := helpFlagSet(env, "keys list", "keys list [--workspace W] [--data DIR | --keys FILE] [-o table|json|csv]")
	workspace := fs.String("workspace", "", "only keys of this workspace")
	k := addKeyringFlags(fs, formatsWithCSV...)
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	kr, err := k.load()
	if err != nil {
		return err
	}
	if err := kr.Err(); err != nil {
		return fmt.Errorf("read keyring: %w", err)
	}
	views := []keyView{}
	for _, r := range kr.Keys() {
		if *workspace != "" && r.Workspace != *workspace {
			continue
		}
		views = append(views, keyView{ID: r.ID, Role: r.Role, Workspace: r.Workspace, ClusterWide: r.ClusterWide(), CreatedAt: r.CreatedAt.UTC()})
	}
	if k.output == "json" {
		return writeJSON(env.Stdout, map[string]any{"keys": views})
	}
	g := &grid{header: []string{"ID", "ROLE", "WORKSPACE", "CREATED"}}
	for _, v := range views {
		ws := dash(v.Workspace)
		if v.ClusterWide {
			ws = clusterWideColumn
		}
		g.add(v.ID, v.Role, ws, v.CreatedAt.Format("2006-01-02 15:04"))
	}
	return g.print(env.Stdout, k.output)
}

func keysRevoke(env *Env, args []string) error {
	fs := helpFlagSet(env, "keys revoke", "keys revoke KEY_ID [--data DIR | --keys FILE] [-o table|json]")
	k := addKeyringFlags(fs, "table", "json")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("name one key id (see cairn keys list)")
	}
	kr, err := k.load()
	if err != nil {
		return err
	}
	if err := kr.Revoke(pos[0]); err != nil {
		if errors.Is(err, auth.ErrUnknownKey) {
			return fmt.Errorf("no key %q in %s (see cairn keys list)", pos[0], kr.Path())
		}
		return err
	}
	if k.output == "json" {
		return writeJSON(env.Stdout, map[string]string{"revoked": pos[0], "keys_file": kr.Path()})
	}
	fmt.Fprintf(env.Stdout, "revoked %s in %s; the services refuse it once they reload the keyring (within a second or two)\n", pos[0], kr.Path())
	return nil
}

// writeJSON prints v as indented JSON, leaving <, > and & as they are
// (messages quote CEL and YAML).
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("encode JSON: %w", err)
	}
	return nil
}
