package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"

	"github.com/cairn-dev/cairn/pkg/auth"
)

func runKeys(_ context.Context, env *Env, args []string) error {
	if len(args) == 0 || args[0] != "create" {
		return usagef("usage: cairn keys create --role write|read|admin|service --workspace W [--keys ./data/keys.json]")
	}
	fs := helpFlagSet(env, "keys create", "keys create --role write|read|admin|service --workspace W [--keys FILE] [-o json]")
	role := fs.String("role", "", "role of the new key: write, read, admin or service")
	workspace := fs.String("workspace", "", "workspace the key belongs to (service keys: none)")
	data := fs.String("data", "./data", "data directory; the keyring defaults to <data>/keys.json")
	keys := fs.String("keys", "", "keyring file shared with the services (default <data>/keys.json)")
	output := fs.String("o", "table", "output format: table or json")
	pos, err := parse(fs, args[1:])
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
	if *workspace == "" && r != auth.RoleService {
		return usagef("--workspace is required for a %s key", r)
	}
	path := *keys
	if path == "" {
		path = filepath.Join(*data, "keys.json")
	}
	kr, err := auth.LoadKeyring(path)
	if err != nil {
		return fmt.Errorf("load keyring: %w", err)
	}
	token, err := kr.Create(*workspace, r)
	if err != nil {
		return err
	}
	if *output == "json" {
		return writeJSON(env.Stdout, map[string]string{"token": token, "role": r.String(), "workspace": *workspace, "keys_file": path})
	}
	fmt.Fprintln(env.Stdout, token)
	fmt.Fprintf(env.Stderr, "created a %s key for workspace %q in %s; the token is shown only once\n", r, *workspace, path)
	return nil
}

func writeJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode JSON: %w", err)
	}
	_, err = fmt.Fprintln(w, string(b))
	return err
}
