package lazyfs

import (
	"context"
	"path/filepath"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// node is a loopback node whose regular files go through the overlay.
// Every operation that could reach the backing directory without it is
// overridden: open, create, stat, truncate, unlink and rename, and the
// ones that would bypass the server's data path (statx, copy_file_range,
// O_TMPFILE) are refused so that the kernel falls back to plain calls.
type node struct {
	fs.LoopbackNode
	lfs *FS
}

var (
	_ fs.NodeOpener         = (*node)(nil)
	_ fs.NodeCreater        = (*node)(nil)
	_ fs.NodeGetattrer      = (*node)(nil)
	_ fs.NodeSetattrer      = (*node)(nil)
	_ fs.NodeUnlinker       = (*node)(nil)
	_ fs.NodeRenamer        = (*node)(nil)
	_ fs.NodeStatxer        = (*node)(nil)
	_ fs.NodeCopyFileRanger = (*node)(nil)
	_ fs.NodeMkdirer        = (*node)(nil)
	_ fs.NodeRmdirer        = (*node)(nil)
	_ fs.NodeLinker         = (*node)(nil)
	_ fs.NodeSymlinker      = (*node)(nil)
	_ fs.NodeMknoder        = (*node)(nil)
)

// path is the node's path in the backing directory.
func (n *node) path() string { return filepath.Join(n.RootData.Path, n.Path(nil)) }

// openFlags are the flags the backing file is opened with: always
// read-write (a page written through a write-only handle must first be
// read from the backing file), never appending (the kernel computes the
// offset) nor direct (the overlay does unaligned I/O).
func openFlags(flags uint32) int {
	f := int(flags) &^ (syscall.O_ACCMODE | syscall.O_APPEND | syscall.O_DIRECT | syscall.O_CREAT | syscall.O_EXCL | syscall.O_TRUNC | fuse.FMODE_EXEC)
	return f | syscall.O_RDWR | syscall.O_CLOEXEC
}

func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	if !n.lfs.enter() {
		return nil, 0, syscall.EIO
	}
	defer n.lfs.leave()
	return n.lfs.open(n.path(), flags)
}

// open opens the backing file at p for a handle; O_TRUNC truncates the
// overlay and the backing file together.
func (l *FS) open(p string, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	fd, err := syscall.Open(p, openFlags(flags), 0)
	if err != nil {
		return nil, 0, errno(err)
	}
	o, err := l.overlayOf(fd)
	if err != nil {
		syscall.Close(fd)
		return nil, 0, errno(err)
	}
	if flags&syscall.O_TRUNC != 0 {
		if err := o.truncate(func(sz int64) error { return syscall.Ftruncate(fd, sz) }, 0); err != nil {
			syscall.Close(fd)
			return nil, 0, errno(err)
		}
	}
	return &file{fd: fd, o: o, lfs: l}, 0, 0
}

func (n *node) Create(ctx context.Context, name string, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	if !n.lfs.enter() {
		return nil, nil, 0, syscall.EIO
	}
	defer n.lfs.leave()
	// The loopback makes the file and its inode (creation is durable at
	// once); its handle is swapped for one through the overlay.
	ch, fh, _, e := n.LoopbackNode.Create(ctx, name, flags&^syscall.O_TRUNC, mode, out)
	if e != 0 {
		return nil, nil, 0, e
	}
	if r, ok := fh.(fs.FileReleaser); ok {
		r.Release(ctx)
	}
	h, _, e := n.lfs.open(filepath.Join(n.path(), name), flags)
	if e != 0 {
		return nil, nil, 0, e
	}
	var a fuse.AttrOut
	if e := h.(*file).Getattr(ctx, &a); e == 0 {
		out.Attr = a.Attr
	}
	return ch, h, 0, 0
}

func (n *node) Getattr(ctx context.Context, f fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if h, ok := f.(*file); ok {
		return h.Getattr(ctx, out)
	}
	var st syscall.Stat_t
	if err := syscall.Lstat(n.path(), &st); err != nil {
		return errno(err)
	}
	out.FromStat(&st)
	if o := n.lfs.existing(st.Ino); o != nil {
		o.mu.Lock()
		out.Size = uint64(o.size)
		o.mu.Unlock()
	}
	return 0
}

func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if !n.lfs.enter() {
		return syscall.EIO
	}
	defer n.lfs.leave()
	if sz, ok := in.GetSize(); ok {
		p := n.path()
		fd, err := syscall.Open(p, syscall.O_RDWR|syscall.O_CLOEXEC, 0)
		if err != nil {
			return errno(err)
		}
		o, err := n.lfs.overlayOf(fd)
		if err == nil {
			err = o.truncate(func(s int64) error { return syscall.Ftruncate(fd, s) }, int64(sz))
		}
		syscall.Close(fd)
		if err != nil {
			return errno(err)
		}
		in.Valid &^= fuse.FATTR_SIZE
	}
	// Mode, owner and times go straight to the backing file.
	if in.Valid&(fuse.FATTR_MODE|fuse.FATTR_UID|fuse.FATTR_GID|fuse.FATTR_ATIME|fuse.FATTR_MTIME|fuse.FATTR_ATIME_NOW|fuse.FATTR_MTIME_NOW) != 0 {
		if e := n.LoopbackNode.Setattr(ctx, nil, in, out); e != 0 {
			return e
		}
	}
	return n.Getattr(ctx, f, out)
}

func (n *node) Unlink(ctx context.Context, name string) syscall.Errno {
	if !n.lfs.enter() {
		return syscall.EIO
	}
	defer n.lfs.leave()
	p := filepath.Join(n.path(), name)
	var st syscall.Stat_t
	if err := syscall.Lstat(p, &st); err != nil {
		return errno(err)
	}
	if err := syscall.Unlink(p); err != nil {
		return errno(err)
	}
	n.lfs.forget(&st)
	return 0
}

func (n *node) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if !n.lfs.enter() {
		return syscall.EIO
	}
	defer n.lfs.leave()
	var victim syscall.Stat_t
	replaced := false
	if np, ok := newParent.(*node); ok && flags&unix.RENAME_EXCHANGE == 0 {
		replaced = syscall.Lstat(filepath.Join(np.path(), newName), &victim) == nil
	}
	if e := n.LoopbackNode.Rename(ctx, name, newParent, newName, flags); e != 0 {
		return e
	}
	if replaced {
		n.lfs.forget(&victim)
	}
	return 0
}

// Statx is refused so that the kernel asks Getattr, which knows the
// unsynced size.
func (n *node) Statx(ctx context.Context, f fs.FileHandle, flags, mask uint32, out *fuse.StatxOut) syscall.Errno {
	return syscall.ENOSYS
}

// CopyFileRange is refused so that the kernel copies through Read and Write.
func (n *node) CopyFileRange(ctx context.Context, fhIn fs.FileHandle, offIn uint64, out *fs.Inode, fhOut fs.FileHandle, offOut uint64, length uint64, flags uint64) (uint32, syscall.Errno) {
	return 0, syscall.ENOSYS
}

// Tmpfile is refused: an unnamed file would bypass the overlay.
func (n *node) Tmpfile(ctx context.Context, flags, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EOPNOTSUPP
}

// The remaining metadata operations pass through, but not after a cut.

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if !n.lfs.enter() {
		return nil, syscall.EIO
	}
	defer n.lfs.leave()
	return n.LoopbackNode.Mkdir(ctx, name, mode, out)
}

func (n *node) Rmdir(ctx context.Context, name string) syscall.Errno {
	if !n.lfs.enter() {
		return syscall.EIO
	}
	defer n.lfs.leave()
	return n.LoopbackNode.Rmdir(ctx, name)
}

func (n *node) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if !n.lfs.enter() {
		return nil, syscall.EIO
	}
	defer n.lfs.leave()
	return n.LoopbackNode.Link(ctx, target, name, out)
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if !n.lfs.enter() {
		return nil, syscall.EIO
	}
	defer n.lfs.leave()
	return n.LoopbackNode.Symlink(ctx, target, name, out)
}

func (n *node) Mknod(ctx context.Context, name string, mode, rdev uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if !n.lfs.enter() {
		return nil, syscall.EIO
	}
	defer n.lfs.leave()
	return n.LoopbackNode.Mknod(ctx, name, mode, rdev, out)
}

// file is an open regular file: reads and writes go through its overlay.
// It has no PassthroughFd, so the kernel never bypasses the server.
type file struct {
	fd  int
	o   *overlay
	lfs *FS
}

var (
	_ fs.FileReader    = (*file)(nil)
	_ fs.FileWriter    = (*file)(nil)
	_ fs.FileFsyncer   = (*file)(nil)
	_ fs.FileFlusher   = (*file)(nil)
	_ fs.FileReleaser  = (*file)(nil)
	_ fs.FileGetattrer = (*file)(nil)
	_ fs.FileAllocater = (*file)(nil)
)

func (f *file) Read(ctx context.Context, buf []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if !f.lfs.enter() {
		return nil, syscall.EIO
	}
	defer f.lfs.leave()
	n, err := f.o.read(f.fd, buf, off)
	if err != nil {
		return nil, errno(err)
	}
	return fuse.ReadResultData(buf[:n]), 0
}

func (f *file) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	if !f.lfs.enter() {
		return 0, syscall.EIO
	}
	defer f.lfs.leave()
	if err := f.o.write(f.fd, data, off); err != nil {
		return 0, errno(err)
	}
	return uint32(len(data)), 0
}

// Fsync writes the file's unsynced pages through, for fsync and fdatasync
// alike.
func (f *file) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	if !f.lfs.enter() {
		return syscall.EIO
	}
	defer f.lfs.leave()
	return errno(f.o.sync(f.fd))
}

// Flush (on close) makes nothing durable, as close does not.
func (f *file) Flush(ctx context.Context) syscall.Errno { return 0 }

func (f *file) Release(ctx context.Context) syscall.Errno {
	return errno(syscall.Close(f.fd))
}

func (f *file) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	var st syscall.Stat_t
	if err := syscall.Fstat(f.fd, &st); err != nil {
		return errno(err)
	}
	out.FromStat(&st)
	f.o.mu.Lock()
	out.Size = uint64(f.o.size)
	f.o.mu.Unlock()
	return 0
}

// Allocate is refused: preallocation would change the size behind the
// overlay's back, and nothing under test uses it.
func (f *file) Allocate(ctx context.Context, off, size uint64, mode uint32) syscall.Errno {
	return syscall.EOPNOTSUPP
}
