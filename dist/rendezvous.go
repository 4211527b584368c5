package dist

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"
)

// Options configure Connect.
type Options struct {
	Rank, WorldSize int
	// MasterAddr is rank 0's rendezvous address, host:port
	// (MASTER_ADDR:MASTER_PORT).
	MasterAddr string
	// Fingerprint identifies the run's configuration (see Fingerprint);
	// ranks with different fingerprints refuse to form a group.
	Fingerprint []byte
	// Timeout bounds each collective whose context has no deadline
	// (default 5 minutes).
	Timeout time.Duration
	// ConnectTimeout bounds the rendezvous and the mesh set-up (default 2
	// minutes): how long ranks wait for rank 0 and rank 0 for the others.
	ConnectTimeout time.Duration
	// Listener, on rank 0 only, is an open rendezvous listener to use
	// instead of listening on MasterAddr (lets tests use port 0).
	Listener net.Listener

	sendHook func(peer int) // see TCPComm.sendHook
}

// Fingerprint hashes the parts of a configuration that every rank must
// agree on (e.g. the resolved config file and the model's config.json).
func Fingerprint(parts ...[]byte) []byte {
	h := sha256.New()
	for _, p := range parts {
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write(p)
	}
	return h.Sum(nil)
}

// magic names the protocol; /2 added the control connections.
const magic = "purpcode-dist/2"

// hello is what a rank tells rank 0 at the rendezvous.
type hello struct {
	Magic       string `json:"magic"`
	Rank        int    `json:"rank"`
	WorldSize   int    `json:"world_size"`
	Fingerprint string `json:"fingerprint"`
	Addr        string `json:"addr"` // where the rank accepts mesh connections
}

// welcome is rank 0's answer: every rank's mesh address, or why not.
type welcome struct {
	Error   string   `json:"error,omitempty"`
	Addrs   []string `json:"addrs,omitempty"`
	Session uint64   `json:"session,omitempty"`
}

// Connect joins the group described by o: rank 0 listens on MasterAddr and
// collects every rank's hello (checking world size, ranks and fingerprint),
// then hands out the mesh addresses; each rank dials the lower ranks and
// accepts the higher ones. It returns once every pair is connected.
func Connect(ctx context.Context, o Options) (*TCPComm, error) {
	if o.WorldSize < 1 || o.Rank < 0 || o.Rank >= o.WorldSize {
		return nil, fmt.Errorf("dist: RANK %d is outside WORLD_SIZE %d", o.Rank, o.WorldSize)
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Minute
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = 2 * time.Minute
	}
	c := newTCPComm(o)
	if o.WorldSize == 1 {
		if o.Listener != nil {
			o.Listener.Close()
		}
		return c, nil
	}
	timeout := o.ConnectTimeout
	if o.Rank != 0 {
		// Rank 0 names the ranks that never came when its own wait ends;
		// the others wait a little longer so that they hear which.
		timeout += min(max(o.ConnectTimeout/4, time.Second), 10*time.Second)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	var (
		w    welcome
		data net.Listener
		err  error
	)
	if o.Rank == 0 {
		w, data, err = serveRendezvous(ctx, o)
	} else {
		w, data, err = joinRendezvous(ctx, o)
	}
	if err != nil {
		return nil, err
	}
	defer data.Close()
	if err := buildMesh(ctx, c, data, w); err != nil {
		c.Close()
		return nil, err
	}
	if err := c.Barrier(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("dist: rank %d: first barrier: %w", o.Rank, err)
	}
	return c, nil
}

// serveRendezvous is rank 0's side.
func serveRendezvous(ctx context.Context, o Options) (welcome, net.Listener, error) {
	fail := func(err error) (welcome, net.Listener, error) {
		return welcome{}, nil, fmt.Errorf("dist: rendezvous at %s: %w", o.MasterAddr, err)
	}
	l := o.Listener
	if l == nil {
		var lc net.ListenConfig
		var err error
		l, err = lc.Listen(ctx, "tcp", o.MasterAddr)
		if errors.Is(err, syscall.EADDRINUSE) {
			return fail(fmt.Errorf("port in use (another job, or a previous run still exiting?); choose another MASTER_PORT: %w", err))
		}
		if err != nil {
			return fail(fmt.Errorf("rank 0 cannot listen on MASTER_ADDR:MASTER_PORT: %w", err))
		}
	}
	defer l.Close()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()

	host, _, err := net.SplitHostPort(l.Addr().String())
	if err != nil {
		return fail(err)
	}
	var lc net.ListenConfig
	data, err := lc.Listen(ctx, "tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return fail(fmt.Errorf("rank 0 mesh listener: %w", err))
	}
	myFP := hex.EncodeToString(o.Fingerprint)
	conns := make([]net.Conn, o.WorldSize)
	from := make([]string, o.WorldSize)
	addrs := make([]string, o.WorldSize)
	closeAll := func(why string) {
		for _, cn := range conns {
			if cn != nil {
				if why != "" {
					// The rendezvous deadline may have passed: that is
					// often why; give the verdict its own second.
					cn.SetDeadline(time.Now().Add(time.Second))     //nolint:errcheck
					json.NewEncoder(cn).Encode(welcome{Error: why}) //nolint:errcheck // the peer may be gone
				}
				cn.Close()
			}
		}
	}
	got := 1 // ranks heard from, rank 0 included
	// reject fails the rendezvous; extra is the rank that made it fail,
	// which counts as heard from unless it duplicates a rank.
	reject := func(extra net.Conn, err error) (welcome, net.Listener, error) {
		if extra != nil && !errors.Is(err, errDuplicate) {
			got++
		}
		if extra != nil {
			json.NewEncoder(extra).Encode(welcome{Error: err.Error()}) //nolint:errcheck
			extra.Close()
		}
		closeAll(err.Error())
		data.Close()
		drainRendezvous(l, err.Error(), o.WorldSize-got)
		return fail(err)
	}
	deadline, _ := ctx.Deadline()
	for got < o.WorldSize {
		cn, err := l.Accept()
		if err != nil {
			var missing []int
			for r := 1; r < o.WorldSize; r++ {
				if conns[r] == nil {
					missing = append(missing, r)
				}
			}
			if ctx.Err() != nil {
				err = fmt.Errorf("ranks %v did not arrive within %s (WORLD_SIZE %d)", missing, o.ConnectTimeout, o.WorldSize)
			}
			return reject(nil, err)
		}
		cn.SetDeadline(deadline) //nolint:errcheck // a failed read below reports it
		var h hello
		if err := json.NewDecoder(cn).Decode(&h); err != nil || h.Magic != magic {
			cn.Close() // not one of ours (a port scan, another job): ignore it
			continue
		}
		switch {
		case h.WorldSize != o.WorldSize:
			return reject(cn, fmt.Errorf("rank %d has WORLD_SIZE %d but rank 0 has %d", h.Rank, h.WorldSize, o.WorldSize))
		case h.Rank <= 0 || h.Rank >= o.WorldSize:
			return reject(cn, fmt.Errorf("a rank from %s claims RANK %d; want 1..%d for WORLD_SIZE %d", cn.RemoteAddr(), h.Rank, o.WorldSize-1, o.WorldSize))
		case conns[h.Rank] != nil:
			return reject(cn, fmt.Errorf("%w %d (from %s and %s)", errDuplicate, h.Rank, from[h.Rank], cn.RemoteAddr()))
		case h.Fingerprint != myFP:
			return reject(cn, fmt.Errorf("rank %d's config fingerprint %.12s differs from rank 0's %.12s: the ranks were started with different configurations", h.Rank, h.Fingerprint, myFP))
		}
		conns[h.Rank], from[h.Rank], addrs[h.Rank] = cn, cn.RemoteAddr().String(), h.Addr
		if addrs[0] == "" {
			// Advertise the interface the peers reach rank 0 on.
			ip, _, _ := net.SplitHostPort(cn.LocalAddr().String())
			_, port, _ := net.SplitHostPort(data.Addr().String())
			addrs[0] = net.JoinHostPort(ip, port)
		}
		got++
	}
	var sess [8]byte
	rand.Read(sess[:])
	w := welcome{Addrs: addrs, Session: binary.LittleEndian.Uint64(sess[:])}
	for r, cn := range conns {
		if cn == nil {
			continue
		}
		if err := json.NewEncoder(cn).Encode(w); err != nil {
			closeAll("")
			data.Close()
			return fail(fmt.Errorf("answer rank %d: %w", r, err))
		}
	}
	closeAll("")
	return w, data, nil
}

var errDuplicate = errors.New("duplicate RANK")

// drainWait is how long rank 0, having failed the rendezvous, keeps
// answering ranks that are still arriving.
const drainWait = time.Second

// drainRendezvous tells the ranks that are connecting to a failed
// rendezvous why it failed: closing the listener with them in its queue
// would reset their connections with no reason given. It stops after
// drainWait or once the missing ranks have been answered.
func drainRendezvous(l net.Listener, why string, missing int) {
	dl, ok := l.(interface{ SetDeadline(time.Time) error })
	if !ok || dl.SetDeadline(time.Now().Add(drainWait)) != nil {
		return
	}
	for ; missing > 0; missing-- {
		cn, err := l.Accept()
		if err != nil {
			return
		}
		cn.SetDeadline(time.Now().Add(drainWait)) //nolint:errcheck
		// Read the hello first: closing with it unread would reset.
		var h hello
		if json.NewDecoder(cn).Decode(&h) == nil && h.Magic == magic {
			json.NewEncoder(cn).Encode(welcome{Error: why}) //nolint:errcheck // best effort
		}
		cn.Close()
	}
}

// joinRendezvous is the side of every rank but 0.
func joinRendezvous(ctx context.Context, o Options) (welcome, net.Listener, error) {
	fail := func(err error) (welcome, net.Listener, error) {
		return welcome{}, nil, fmt.Errorf("dist: rank %d: rendezvous at %s: %w", o.Rank, o.MasterAddr, err)
	}
	var (
		cn      net.Conn
		lastErr error
	)
	// Rank 0 may start later than this rank: retry for ConnectTimeout.
	dialCtx, cancel := context.WithTimeout(ctx, o.ConnectTimeout)
	defer cancel()
	for backoff := 10 * time.Millisecond; ; backoff = min(2*backoff, 200*time.Millisecond) {
		var d net.Dialer
		var err error
		cn, err = d.DialContext(dialCtx, "tcp", o.MasterAddr)
		if err == nil {
			break
		}
		lastErr = err
		select {
		case <-dialCtx.Done():
			return fail(fmt.Errorf("could not reach rank 0 at MASTER_ADDR:MASTER_PORT within %s: %w", o.ConnectTimeout, lastErr))
		case <-time.After(backoff):
		}
	}
	defer cn.Close()
	stop := context.AfterFunc(ctx, func() { cn.Close() })
	defer stop()
	ip, _, err := net.SplitHostPort(cn.LocalAddr().String())
	if err != nil {
		return fail(err)
	}
	var lc net.ListenConfig
	data, err := lc.Listen(ctx, "tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return fail(fmt.Errorf("mesh listener: %w", err))
	}
	h := hello{Magic: magic, Rank: o.Rank, WorldSize: o.WorldSize, Fingerprint: hex.EncodeToString(o.Fingerprint), Addr: data.Addr().String()}
	var w welcome
	if err = json.NewEncoder(cn).Encode(h); err == nil {
		err = json.NewDecoder(cn).Decode(&w)
	}
	switch {
	case err != nil && ctx.Err() != nil:
		err = fmt.Errorf("rank 0 did not complete the rendezvous within %s (are all WORLD_SIZE=%d ranks started?)", o.ConnectTimeout, o.WorldSize)
	case errors.Is(err, io.EOF):
		err = fmt.Errorf("rank 0 closed the connection (it failed or was stopped): %w", err)
	case err == nil && w.Error != "":
		err = fmt.Errorf("rejected by rank 0: %s", w.Error)
	case err == nil && len(w.Addrs) != o.WorldSize:
		err = fmt.Errorf("rank 0 sent %d addresses for WORLD_SIZE %d", len(w.Addrs), o.WorldSize)
	}
	if err != nil {
		data.Close()
		return fail(err)
	}
	return w, data, nil
}

// meshHelloLen is a mesh connection's greeting: session id, rank and
// kind (data or control).
const meshHelloLen = 16

const (
	connData = iota
	connCtrl
)

// buildMesh connects c to every peer, twice (data and control): it dials
// the lower ranks and accepts the higher ones on data.
func buildMesh(ctx context.Context, c *TCPComm, data net.Listener, w welcome) error {
	stop := context.AfterFunc(ctx, func() { data.Close() })
	defer stop()
	deadline, _ := ctx.Deadline()
	accepted := make(chan error, 1)
	incoming := [2][]net.Conn{make([]net.Conn, c.size), make([]net.Conn, c.size)}
	go func() {
		for n := 2 * (c.size - c.rank - 1); n > 0; {
			cn, err := data.Accept()
			if err != nil {
				var missing []int
				for q := c.rank + 1; q < c.size; q++ {
					if incoming[connData][q] == nil || incoming[connCtrl][q] == nil {
						missing = append(missing, q)
					}
				}
				accepted <- fmt.Errorf("ranks %v did not connect: %w", missing, err)
				return
			}
			cn.SetDeadline(deadline) //nolint:errcheck
			var b [meshHelloLen]byte
			if _, err := io.ReadFull(cn, b[:]); err != nil || binary.LittleEndian.Uint64(b[:]) != w.Session {
				cn.Close() // a stray or stale connection
				continue
			}
			q := int(binary.LittleEndian.Uint32(b[8:]))
			kind := binary.LittleEndian.Uint32(b[12:])
			if q <= c.rank || q >= c.size || kind > connCtrl || incoming[kind][q] != nil {
				cn.Close()
				accepted <- fmt.Errorf("unexpected mesh connection claiming rank %d", q)
				return
			}
			incoming[kind][q] = cn
			n--
		}
		accepted <- nil
	}()
	var dialErr error
	for q := 0; q < c.rank && dialErr == nil; q++ {
		for kind, dst := range [][]net.Conn{c.peers, c.ctrl} {
			var d net.Dialer
			cn, err := d.DialContext(ctx, "tcp", w.Addrs[q])
			if err != nil {
				dialErr = fmt.Errorf("connect to rank %d at %s: %w", q, w.Addrs[q], err)
				break
			}
			dst[q] = cn
			var b [meshHelloLen]byte
			binary.LittleEndian.PutUint64(b[:], w.Session)
			binary.LittleEndian.PutUint32(b[8:], uint32(c.rank))
			binary.LittleEndian.PutUint32(b[12:], uint32(kind))
			cn.SetDeadline(deadline) //nolint:errcheck
			if _, err := cn.Write(b[:]); err != nil {
				dialErr = fmt.Errorf("greet rank %d: %w", q, err)
				break
			}
		}
	}
	if dialErr != nil {
		data.Close()
	}
	accErr := <-accepted
	for q := c.rank + 1; q < c.size; q++ {
		c.peers[q], c.ctrl[q] = incoming[connData][q], incoming[connCtrl][q]
	}
	if err := cmp.Or(dialErr, accErr); err != nil {
		return fmt.Errorf("dist: rank %d: mesh: %w", c.rank, err)
	}
	for q := range c.size {
		if q != c.rank && (c.peers[q] == nil || c.ctrl[q] == nil) {
			return fmt.Errorf("dist: rank %d: mesh incomplete", c.rank)
		}
	}
	for q := range c.size {
		if q == c.rank {
			continue
		}
		// Control connections stay without a deadline: their readers
		// wait for the whole life of the Comm.
		c.ctrl[q].SetDeadline(time.Time{}) //nolint:errcheck
		c.ctrlDone[q] = make(chan struct{})
		go c.watch(q)
	}
	return nil
}
