// Package lazyfs is a FUSE passthrough file system that loses, on demand,
// every write not yet made durable: a power cut for tests, in the manner
// of Jepsen's LazyFS.
//
// File data written since the last fsync or fdatasync of a file is kept in
// memory, page by page, and served over the backing file by reads and mmap
// page faults alike; an fsync writes the file's pages through to the
// backing directory. Cut drops every page not yet written through, so the
// backing directory is what a disk would hold after a power cut, and makes
// every later operation fail with EIO.
//
// Metadata is durable at once: create, mkdir, unlink, rename, link,
// truncate and mode changes go straight to the backing directory, as
// LazyFS does by default. A lost directory entry or file size is not
// simulated; see docs/adr/0020-power-loss-testing-with-a-lazy-fuse-filesystem.md.
//
// A process must not touch its own mount through mmap: a page fault served
// by a FUSE server in the same Go process can deadlock the runtime. The
// tests run the programs under test (and every mmap reader) as children.
package lazyfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// pageSize is the granularity of the unsynced overlay.
const pageSize = 4096

// FS is one mounted lazy file system.
type FS struct {
	backing, mountpoint string
	server              *fuse.Server

	// gate orders operations against Cut: every operation holds it for
	// reading, Cut for writing, so no write reaches the backing directory
	// after the cut and an fsync in progress completes before it (the cut
	// lands between system calls; torn writes are not simulated).
	gate      sync.RWMutex
	dead      bool
	unmounted bool

	mu       sync.Mutex
	overlays map[uint64]*overlay // by backing inode number
}

// Lost is what a power cut dropped.
type Lost struct {
	Files int   // files with unsynced data
	Pages int   // pages not written through
	Bytes int64 // unsynced growth of the files' sizes, in bytes
}

// Mount mounts a lazy view of backing on mountpoint (both directories must
// exist). It needs root and /dev/fuse; see Available.
func Mount(backing, mountpoint string) (*FS, error) {
	backing, err := filepath.Abs(backing)
	if err != nil {
		return nil, fmt.Errorf("lazyfs: %w", err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(backing, &st); err != nil {
		return nil, fmt.Errorf("lazyfs: stat backing dir: %w", err)
	}
	l := &FS{backing: backing, mountpoint: mountpoint, overlays: map[uint64]*overlay{}}
	root := &fs.LoopbackRoot{Path: backing, Dev: uint64(st.Dev)}
	root.NewNode = func(r *fs.LoopbackRoot, _ *fs.Inode, _ string, _ *syscall.Stat_t) fs.InodeEmbedder {
		return &node{LoopbackNode: fs.LoopbackNode{RootData: r}, lfs: l}
	}
	root.RootNode = root.NewNode(root, nil, "", &st)
	zero := time.Duration(0)
	server, err := fs.Mount(mountpoint, root.RootNode, &fs.Options{
		// Sizes change under the kernel's feet only through this mount,
		// but a zero timeout keeps every stat exact at no cost that
		// matters to the tests.
		EntryTimeout: &zero, AttrTimeout: &zero, NegativeTimeout: &zero,
		MountOptions: fuse.MountOptions{
			FsName: "lazyfs", Name: "lazyfs",
			DirectMount: true, DirectMountStrict: true, // no fusermount here; root mounts directly
		},
	})
	if err != nil {
		return nil, fmt.Errorf("lazyfs: mount %s on %s: %w", backing, mountpoint, err)
	}
	l.server = server
	return l, nil
}

// Available says why lazyfs cannot mount here, or "" when it can try:
// mounting needs root and /dev/fuse.
func Available() string {
	if os.Geteuid() != 0 {
		return "lazyfs needs root to mount FUSE directly"
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return "lazyfs needs /dev/fuse: " + err.Error()
	}
	return ""
}

// Cut simulates a power cut: every page not yet written through by an
// fsync is dropped and every later operation fails with EIO. The mount
// stays until Unmount, so that the processes using it can be killed first.
func (l *FS) Cut() Lost {
	l.gate.Lock()
	defer l.gate.Unlock()
	l.dead = true
	l.mu.Lock()
	defer l.mu.Unlock()
	var lost Lost
	for ino, o := range l.overlays {
		o.mu.Lock()
		if len(o.pages) > 0 || o.size > o.synced {
			lost.Files++
			lost.Pages += len(o.pages)
			lost.Bytes += o.size - o.synced
		}
		o.pages, o.size, o.synced = nil, 0, 0
		o.mu.Unlock()
		delete(l.overlays, ino)
	}
	return lost
}

// Unmount unmounts the file system (lazily if a process still holds it)
// and waits for the server to stop. Data not synced is dropped, as by Cut.
func (l *FS) Unmount() error {
	l.Cut()
	l.gate.Lock()
	done := l.unmounted
	l.unmounted = true
	l.gate.Unlock()
	if done {
		return nil
	}
	err := l.server.Unmount()
	if err != nil {
		// A killed process may not be reaped yet: detach the mount now,
		// the kernel ends it when the last user goes.
		if derr := syscall.Unmount(l.mountpoint, syscall.MNT_DETACH); derr != nil {
			return fmt.Errorf("lazyfs: unmount %s: %w (detach: %v)", l.mountpoint, err, derr)
		}
	}
	l.server.Wait()
	return nil
}

// enter admits an operation; it reports false after a cut.
func (l *FS) enter() bool {
	l.gate.RLock()
	if l.dead {
		l.gate.RUnlock()
		return false
	}
	return true
}

func (l *FS) leave() { l.gate.RUnlock() }

// overlayOf returns the overlay of the backing file open as fd, creating
// it at the file's current size.
func (l *FS) overlayOf(fd int) (*overlay, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	o := l.overlays[st.Ino]
	if o == nil {
		o = &overlay{size: st.Size, synced: st.Size, pages: map[int64][]byte{}}
		l.overlays[st.Ino] = o
	}
	return o, nil
}

// existing returns the overlay of inode ino if it has one.
func (l *FS) existing(ino uint64) *overlay {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.overlays[ino]
}

// forget drops the overlay of a file whose last name is gone, so that a
// new file reusing its inode number does not inherit its pages. Open
// handles keep their own pointer to it.
func (l *FS) forget(st *syscall.Stat_t) {
	if st.Nlink > 1 || st.Mode&syscall.S_IFMT != syscall.S_IFREG {
		return
	}
	l.mu.Lock()
	delete(l.overlays, st.Ino)
	l.mu.Unlock()
}

// overlay is the unsynced state of one file.
type overlay struct {
	mu sync.Mutex
	// size is the file's size as its users see it; synced is the size
	// of the backing file. size >= synced: truncation reaches the
	// backing file at once, growth by writes only with an fsync.
	size, synced int64
	pages        map[int64][]byte // unsynced pages by index, pageSize bytes each
}

// read fills buf from off: the backing file, with the unsynced pages over it.
func (o *overlay) read(fd int, buf []byte, off int64) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if off >= o.size {
		return 0, nil
	}
	buf = buf[:min(int64(len(buf)), o.size-off)]
	n, err := preadFull(fd, buf, off)
	if err != nil {
		return 0, err
	}
	clear(buf[n:]) // growth not yet synced reads as zeros where no page covers it
	if len(o.pages) == 0 {
		return len(buf), nil
	}
	end := off + int64(len(buf))
	for p := off / pageSize; p*pageSize < end; p++ {
		pg, ok := o.pages[p]
		if !ok {
			continue
		}
		start := p * pageSize
		lo, hi := max(start, off), min(start+pageSize, end)
		copy(buf[lo-off:hi-off], pg[lo-start:hi-start])
	}
	return len(buf), nil
}

// write puts data at off into the overlay; nothing reaches the backing file.
func (o *overlay) write(fd int, data []byte, off int64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	end := off + int64(len(data))
	for p := off / pageSize; p*pageSize < end; p++ {
		start := p * pageSize
		pg, ok := o.pages[p]
		if !ok {
			pg = make([]byte, pageSize)
			if start < o.synced {
				if _, err := preadFull(fd, pg[:min(pageSize, o.synced-start)], start); err != nil {
					return err
				}
			}
			o.pages[p] = pg
		}
		lo, hi := max(start, off), min(start+pageSize, end)
		copy(pg[lo-start:hi-start], data[lo-off:hi-off])
	}
	o.size = max(o.size, end)
	return nil
}

// sync writes the unsynced pages and size through to the backing file.
func (o *overlay) sync(fd int) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	idx := make([]int64, 0, len(o.pages))
	for p := range o.pages {
		idx = append(idx, p)
	}
	sort.Slice(idx, func(i, j int) bool { return idx[i] < idx[j] })
	for _, p := range idx {
		start := p * pageSize
		n := min(pageSize, o.size-start)
		if n <= 0 {
			continue
		}
		if err := pwriteFull(fd, o.pages[p][:n], start); err != nil {
			return err
		}
	}
	if o.size != o.synced {
		if err := syscall.Ftruncate(fd, o.size); err != nil {
			return err
		}
	}
	// The backing directory stands for the disk: what is written to it
	// survives a cut, so it is not fsynced itself (that would only time
	// the host's disk).
	o.synced = o.size
	clear(o.pages)
	return nil
}

// truncate sets the size: on the backing file at once (metadata is
// durable immediately) and in the overlay, whose pages past the new end
// are dropped and whose last page is zeroed past it.
func (o *overlay) truncate(trunc func(int64) error, size int64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := trunc(size); err != nil {
		return err
	}
	for p, pg := range o.pages {
		switch start := p * pageSize; {
		case start >= size:
			delete(o.pages, p)
		case start+pageSize > size:
			clear(pg[size-start:])
		}
	}
	o.size, o.synced = size, size
	return nil
}

func preadFull(fd int, buf []byte, off int64) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := syscall.Pread(fd, buf[n:], off+int64(n))
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return n, err
		}
		if m == 0 {
			break
		}
		n += m
	}
	return n, nil
}

func pwriteFull(fd int, buf []byte, off int64) error {
	for len(buf) > 0 {
		m, err := syscall.Pwrite(fd, buf, off)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		buf, off = buf[m:], off+int64(m)
	}
	return nil
}

// errno turns an error from the backing file system into a FUSE status.
func errno(err error) syscall.Errno { return fs.ToErrno(err) }
