// vipd_relay: the balancer's data path, in native code (issue #12: the balancer at HAProxy's
// efficiency). A RelayEngine is one frontend: a listening socket and N threads, each with its own
// epoll, that accept client connections, connect them to a backend (hedging a slow connect,
// retrying a failed one, retrying a backend that closes before its first byte), and relay bytes
// both ways with half-close, backpressure and the FIN and idle timeouts. No JavaScript runs per
// connection or per byte; policy stays in TypeScript (src/proxy/engine.ts, frontend.ts):
//   - JS sets the backends (address, port, routable, draining) and the settings; the threads pick
//     among them (roundrobin or leastconn, skipping those tried, falling back to those marked down);
//   - the threads report what JS acts on or counts, in batches (a threadsafe function, at most one
//     call queued): connection opened/closed (the takeover's connection list), connect times (the
//     auto hedge delay), connect failures (passive checks, logs), hedge wins (a backend swallowing
//     SYNs), unserved clients, a backend left idle while draining, the frontend drained;
//   - counters (bytes, connections, failures, hedges, retries) are atomics JS reads on a scrape.
//
// Why native: a Node balancer spends 2.5x HAProxy's CPU per new connection and 1.6x per relayed
// request on two net.Sockets, their handles, wraps, listeners and event-loop phases, and allocates
// a Buffer per read (bench/README.md). Here a connection is one struct of a few hundred bytes and
// its two file descriptors; a relayed chunk is one recv into a per-thread buffer and one send.
//
// Threads: one epoll per thread, the shared listening socket in each with EPOLLEXCLUSIVE (the
// kernel wakes one of them per connection), everything about a connection on the thread that
// accepted it. JS talks to a thread through its command queue (a mutex, an eventfd) and waits for
// commands that must be done before it goes on (stop accepting, close).
//
// Either family: a listener on an IPv4 address, on a specific IPv6 address (IPV6_V6ONLY), or on "::"
// (dual stack: IPv4 clients too, as HAProxy's `bind :::6443 v4v6`); backends of either family, each
// connected with its own. An IPv4 client on the dual-stack listener is reported as IPv4 (not
// ::ffff:a.b.c.d), so the takeover's connection lists see the same client whatever the listener.
//
// JS: new RelayEngine(onEvents, threads, observeConnections) / .listen(host, port, backlog) ->
//     port / .configure(connectTimeoutMs, retries, idleTimeoutMs, hedgeDelayMs, finTimeoutMs,
//     leastconn, keepAliveMs) / .setBackends([{id, address, port, routable, draining}]) /
//     .setBackendState(id, routable, draining) / .destroyBackend(id) / .stopAccepting() /
//     .destroyAll() / .stats() / .backendStats(id) / .close()

#include <node_api.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace {

// A read per wake-up into this per-thread buffer: large enough that a bulk stream moves in few
// system calls (HAProxy's default buffer is 16 KiB), small enough to stay in cache.
constexpr size_t kScratch = 128 * 1024;
// Reads per side per wake-up before the loop moves on (level-triggered: the rest comes next turn).
constexpr int kReadsPerWake = 4;
// Client bytes held for a replay to another backend, at most (see relay.ts, REPLAY_LIMIT).
constexpr size_t kReplayLimit = 32 * 1024;
constexpr uint8_t kTlsHandshake = 0x16;
constexpr int kAcceptBatch = 64;
constexpr int kEpollBatch = 256;
// TCP keepalive: turned on by a sweep for connections older than this, first probe after 30 s idle.
constexpr int64_t kKeepAliveSweepMs = 5000;
constexpr int kKeepAliveIdleS = 30;
constexpr int kKeepAliveIntervalS = 1;
constexpr int kKeepAliveCount = 10;
// Out of descriptors (EMFILE): the listener leaves epoll this long rather than wake the thread for
// a connection it cannot take (level-triggered, it would spin); the kernel keeps the queue.
constexpr int64_t kAcceptPauseUs = 100 * 1000;

// Reason codes for a failed attempt: errno values are positive.
constexpr int kReasonTimeout = -1;
constexpr int kReasonClosedUnanswered = -2;

enum EventType : uint8_t {
  kEvOpened = 1,
  kEvClosed = 2,
  kEvConnected = 3,       // backend, value = connect time in µs
  kEvConnectFailed = 4,   // backend, code = reason, next, connecting
  kEvHedgeWon = 5,        // backend = winner, code = slow backend's id
  kEvUnserved = 6,        // code = kind (1 no backend, 2 all tried failed, 3 connect failed), value = reason
  kEvBackendIdle = 7,     // backend (draining, no connections left)
  kEvDrained = 8,         // the frontend stopped accepting and has no connection left
  kEvAcceptError = 9,     // code = errno
  kEvFinTimeout = 10,
};
enum Next : uint8_t { kNextNone = 0, kNextRetry = 1, kNextOther = 2 };

// 56 bytes, read by src/native/relay-engine.ts with a DataView (host byte order, little-endian here).
struct Event {
  uint8_t type;
  uint8_t next;
  uint8_t connecting;
  uint8_t family;        // of the addresses: 4 or 6 (0: the event carries none)
  uint32_t backend;
  int32_t code;
  int32_t value;
  uint8_t local_addr[16];   // network byte order, as the kernel gives it; IPv4 in the first 4 bytes
  uint8_t remote_addr[16];
  uint16_t local_port;   // host byte order
  uint16_t remote_port;
  uint32_t pad1;
};
static_assert(sizeof(Event) == 56, "Event is 56 bytes");

// A socket address of either family, on the stack or in a struct: no sockaddr_storage (128 bytes)
// per connection or backend.
union SockAddr {
  struct sockaddr sa;
  struct sockaddr_in v4;
  struct sockaddr_in6 v6;
};

socklen_t SockLen(const SockAddr& a) {
  return a.sa.sa_family == AF_INET6 ? sizeof a.v6 : sizeof a.v4;
}

// An accepted connection's end as the events carry it: an IPv4-mapped IPv6 address (an IPv4
// client on the dual-stack listener) becomes the IPv4 address it is.
void EndpointOf(const SockAddr& a, uint8_t* family, uint8_t addr[16], uint16_t* port) {
  if (a.sa.sa_family == AF_INET6) {
    const struct in6_addr& ip = a.v6.sin6_addr;
    *port = ntohs(a.v6.sin6_port);
    if (IN6_IS_ADDR_V4MAPPED(&ip)) {
      *family = 4;
      memcpy(addr, ip.s6_addr + 12, 4);
    } else {
      *family = 6;
      memcpy(addr, ip.s6_addr, 16);
    }
    return;
  }
  *family = 4;
  *port = ntohs(a.v4.sin_port);
  memcpy(addr, &a.v4.sin_addr, 4);
}

int64_t NowUs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

struct Backend {
  uint32_t id = 0;
  SockAddr addr {};
  std::atomic<bool> routable{true};
  std::atomic<bool> draining{false};
  std::atomic<int64_t> active{0};
  std::atomic<uint64_t> total{0};
  std::atomic<uint64_t> connect_failures{0};
  std::atomic<uint64_t> hedges{0};
  std::atomic<uint64_t> hedge_wins{0};
};
using BackendRef = std::shared_ptr<Backend>;

struct Settings {
  int64_t connect_timeout_us = 5000000;
  int retries = 3;
  int64_t idle_timeout_us = 0;
  int64_t hedge_delay_us = 0;
  int64_t fin_timeout_us = 30000000;
  bool leastconn = false;
  int64_t keepalive_us = kKeepAliveSweepMs * 1000;
};

struct Conn;
class Worker;
class Engine;

enum Role : uint8_t { kRoleListen = 0, kRoleClient = 1, kRoleAttempt = 2, kRoleWake = 3 };

// One socket of a connection, as epoll sees it (data.ptr points here).
struct Side {
  Role role = kRoleClient;
  Conn* conn = nullptr;
  int fd = -1;
  uint32_t events = 0;       // the mask registered with epoll (0: registered for errors only)
  bool registered = false;
  bool parked = false;       // taken out of epoll: hung up with bytes we cannot forward yet
  bool eof = false;          // its remote sent FIN (we read 0)
  bool shut = false;         // we sent FIN to it (shutdown SHUT_WR)
  char* pending = nullptr;   // bytes waiting to be written to it
  size_t pending_len = 0;
  size_t pending_off = 0;
  int64_t activity = 0;      // last read from or write to it (µs)
  uint64_t bytes_read = 0;
};

struct Attempt {
  Side side;
  BackendRef backend;
  int64_t started = 0;
  bool hedged = false;   // it had its hedge (or had none to have)
  bool spare = false;    // it is a hedge
  bool live = false;
};

enum Phase : uint8_t { kConnecting = 0, kRelaying = 1, kDone = 2 };

struct Conn {
  Side client;
  Attempt att[2];  // att[0]: the older attempt in flight, then the backend relayed to; att[1]: a second one
  Phase phase = kConnecting;
  uint8_t failures = 0;
  uint8_t fin_armed = 0;  // 1: the client's inactivity limit is the FIN timeout; 2: the backend's
  bool keepalive = false;
  bool unanswered = false;
  bool replayable = true;
  bool client_gone = false;  // the client reset or errored while connecting
  uint8_t tried_count = 0;   // backends attempted for this client (identity only; at most kMaxTried kept)
  Backend* tried[16] = {};
  std::vector<char> held;
  int64_t accepted = 0;
  int64_t timer_at = 0;
  int heap_index = -1;
  uint8_t family = 0;  // of local_addr and remote_addr, as Event::family
  uint8_t local_addr[16] = {}, remote_addr[16] = {};
  uint16_t local_port = 0, remote_port = 0;
  Conn* prev = nullptr;
  Conn* next = nullptr;
};

// Commands from the JS thread to a worker.
struct Command {
  enum Type : uint8_t { kDestroyBackend, kDestroyAll, kStopAccepting, kExit } type;
  uint32_t backend = 0;
};

class Engine {
 public:
  napi_threadsafe_function tsfn = nullptr;
  napi_ref wrapper = nullptr;
  int listen_fd = -1;
  bool observe = false;
  int thread_count = 1;
  std::vector<std::unique_ptr<Worker>> workers;
  bool started = false;
  bool closed = false;
  bool pinned = false;  // a strong reference to the JS object while listening
  bool hooked = false;  // our environment cleanup hook is registered

  // What the workers read: replaced whole under the mutex, picked up by version.
  std::mutex config_mutex;
  Settings settings;
  std::vector<BackendRef> backends;
  std::atomic<uint64_t> config_version{1};

  // Counters.
  std::atomic<int64_t> conns{0};
  std::atomic<uint64_t> bytes_in{0}, bytes_out{0}, retries{0}, unanswered_retries{0}, unserved{0}, fin_timeouts{0};
  std::atomic<bool> accepting{false};

  // Events on their way to JS.
  std::mutex out_mutex;
  std::vector<Event> outbox;
  std::atomic<bool> notified{false};

  void Emit(std::vector<Event>* batch) {
    if (batch->empty()) return;
    {
      std::lock_guard<std::mutex> lock(out_mutex);
      outbox.insert(outbox.end(), batch->begin(), batch->end());
    }
    batch->clear();
    if (!notified.exchange(true) && tsfn != nullptr) {
      napi_call_threadsafe_function(tsfn, nullptr, napi_tsfn_nonblocking);
    }
  }
  void Close();
};

// A min-heap of connections by their timer, intrusive (Conn::heap_index) so removal is O(log n).
class TimerHeap {
 public:
  bool empty() const { return heap_.empty(); }
  Conn* top() const { return heap_.front(); }
  void Set(Conn* c, int64_t at) {
    c->timer_at = at;
    if (c->heap_index < 0) {
      c->heap_index = static_cast<int>(heap_.size());
      heap_.push_back(c);
      Up(c->heap_index);
    } else {
      Up(c->heap_index);
      Down(c->heap_index);
    }
  }
  void Remove(Conn* c) {
    int i = c->heap_index;
    if (i < 0) return;
    Conn* last = heap_.back();
    heap_.pop_back();
    c->heap_index = -1;
    if (last == c) return;
    heap_[i] = last;
    last->heap_index = i;
    Up(i);
    Down(i);
  }

 private:
  std::vector<Conn*> heap_;
  void Swap(int a, int b) {
    std::swap(heap_[a], heap_[b]);
    heap_[a]->heap_index = a;
    heap_[b]->heap_index = b;
  }
  void Up(int i) {
    while (i > 0) {
      int p = (i - 1) / 2;
      if (heap_[p]->timer_at <= heap_[i]->timer_at) break;
      Swap(i, p);
      i = p;
    }
  }
  void Down(int i) {
    int n = static_cast<int>(heap_.size());
    for (;;) {
      int l = 2 * i + 1, r = l + 1, m = i;
      if (l < n && heap_[l]->timer_at < heap_[m]->timer_at) m = l;
      if (r < n && heap_[r]->timer_at < heap_[m]->timer_at) m = r;
      if (m == i) break;
      Swap(i, m);
      i = m;
    }
  }
};

class Worker {
 public:
  explicit Worker(Engine* engine) : engine_(engine) {}
  ~Worker() {
    if (epfd_ >= 0) close(epfd_);
    if (wakefd_ >= 0) close(wakefd_);
  }

  int Init() {
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epfd_ < 0) return errno;
    wakefd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wakefd_ < 0) return errno;
    wake_side_.role = kRoleWake;
    wake_side_.fd = wakefd_;
    struct epoll_event ev {};
    ev.events = EPOLLIN;
    ev.data.ptr = &wake_side_;
    if (epoll_ctl(epfd_, EPOLL_CTL_ADD, wakefd_, &ev) < 0) return errno;
    // Its own copy of the listener's descriptor: the JS thread closes the engine's only after every
    // worker has taken it out of its epoll (stop accepting), and never reads this one.
    listen_fd_ = engine_->listen_fd;
    listen_side_.role = kRoleListen;
    listen_side_.fd = listen_fd_;
    int err = Listen(true);
    return err;
  }

  // Puts the listener in this thread's epoll (one of the threads woken per connection) or takes it out.
  int Listen(bool on) {
    if (on == listening_) return 0;
    struct epoll_event ev {};
    ev.events = EPOLLIN | EPOLLEXCLUSIVE;
    ev.data.ptr = &listen_side_;
    if (epoll_ctl(epfd_, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, listen_fd_, on ? &ev : nullptr) < 0) return errno;
    listening_ = on;
    return 0;
  }

  void Start() { thread_ = std::thread([this] { Run(); }); }

  // Queues a command; with `wait`, returns once the worker has carried it out.
  void Post(Command cmd, bool wait) {
    uint64_t ticket;
    {
      std::lock_guard<std::mutex> lock(cmd_mutex_);
      commands_.push_back(cmd);
      ticket = ++posted_;
    }
    uint64_t one = 1;
    ssize_t w = write(wakefd_, &one, sizeof one);
    (void)w;
    if (!wait) return;
    std::unique_lock<std::mutex> lock(cmd_mutex_);
    done_cv_.wait(lock, [&] { return done_ >= ticket; });
  }

  void Join() {
    if (thread_.joinable()) thread_.join();
  }

 private:
  Engine* engine_;
  int epfd_ = -1;
  int wakefd_ = -1;
  Side wake_side_;
  Side listen_side_;
  int listen_fd_ = -1;
  bool listening_ = false;
  bool stopped_ = false;          // stop accepting: the listener never comes back
  int64_t accept_resume_at_ = 0;  // out of descriptors: the listener comes back then (0: not paused)
  bool exit_ = false;
  std::thread thread_;
  std::mutex cmd_mutex_;
  std::condition_variable done_cv_;
  std::vector<Command> commands_;
  uint64_t posted_ = 0;
  uint64_t done_ = 0;

  uint64_t config_version_ = 0;
  Settings s_;
  std::vector<BackendRef> backends_;
  size_t cursor_ = 0;
  TimerHeap timers_;
  Conn* conns_ = nullptr;       // every connection of this thread, for sweeps and commands
  // Attempts that failed inside connect(), handled after the event: known by their descriptor (still
  // open, so never reused meanwhile), as a swap may have moved them to the other slot.
  struct Deferred {
    Conn* conn;
    int fd;
    int err;
  };
  std::vector<Deferred> deferred_;
  std::vector<Event> events_;
  // Sides closed or moved to another slot in this epoll batch: the batch's later events for them
  // are stale (a level-triggered socket is reported again, at its new place, next turn).
  std::vector<Side*> stale_;
  int64_t now_ = 0;
  int64_t next_sweep_ = 0;
  char* scratch_ = nullptr;

  // --- the loop -------------------------------------------------------------------------------

  void Run() {
    scratch_ = static_cast<char*>(malloc(kScratch));
    struct epoll_event evs[kEpollBatch];
    now_ = NowUs();
    next_sweep_ = now_ + kKeepAliveSweepMs * 1000;
    Refresh();
    while (!exit_) {
      int timeout = -1;
      int64_t due = next_sweep_;
      if (!timers_.empty() && timers_.top()->timer_at < due) due = timers_.top()->timer_at;
      if (accept_resume_at_ != 0 && accept_resume_at_ < due) due = accept_resume_at_;
      int64_t wait_us = due - NowUs();
      timeout = wait_us <= 0 ? 0 : static_cast<int>((wait_us + 999) / 1000);
      int n = epoll_wait(epfd_, evs, kEpollBatch, timeout);
      now_ = NowUs();
      if (engine_->config_version.load(std::memory_order_acquire) != config_version_) Refresh();
      stale_.clear();
      for (int i = 0; i < n; i++) {
        Side* side = static_cast<Side*>(evs[i].data.ptr);
        if (!stale_.empty() && std::find(stale_.begin(), stale_.end(), side) != stale_.end()) continue;
        switch (side->role) {
          case kRoleWake: Commands(); break;
          case kRoleListen:
            // Commands earlier in this batch may have taken the listener out (stop accepting).
            if (listening_) Accept();
            break;
          case kRoleClient:
          case kRoleAttempt: OnSide(side, evs[i].events); break;
        }
        RunDeferred();
      }
      RunTimers();
      if (now_ >= next_sweep_) Sweep();
      if (accept_resume_at_ != 0 && now_ >= accept_resume_at_) {
        accept_resume_at_ = 0;
        if (!stopped_) Listen(true);
      }
      engine_->Emit(&events_);
      FreeRetired();
    }
    // Exit: every connection of this thread is closed (an abort, as destroy() does).
    while (conns_ != nullptr) Abort(conns_);
    engine_->Emit(&events_);
    FreeRetired();
    for (Conn* c : pool_) delete c;
    pool_.clear();
    free(scratch_);
    scratch_ = nullptr;
  }

  void Refresh() {
    std::lock_guard<std::mutex> lock(engine_->config_mutex);
    config_version_ = engine_->config_version.load(std::memory_order_acquire);
    s_ = engine_->settings;
    backends_ = engine_->backends;
    if (cursor_ >= backends_.size()) cursor_ = 0;
  }

  void Commands() {
    uint64_t v;
    while (read(wakefd_, &v, sizeof v) > 0) {
    }
    std::vector<Command> todo;
    {
      std::lock_guard<std::mutex> lock(cmd_mutex_);
      todo.swap(commands_);
    }
    for (const Command& c : todo) {
      switch (c.type) {
        case Command::kDestroyBackend: {
          for (Conn* x = conns_; x != nullptr;) {
            Conn* next = x->next;
            if (x->phase == kRelaying && x->att[0].backend && x->att[0].backend->id == c.backend) Abort(x);
            x = next;
          }
          break;
        }
        case Command::kDestroyAll:
          while (conns_ != nullptr) Abort(conns_);
          break;
        case Command::kStopAccepting:
          stopped_ = true;
          accept_resume_at_ = 0;
          Listen(false);
          break;
        case Command::kExit:
          exit_ = true;
          break;
      }
    }
    engine_->Emit(&events_);
    {
      std::lock_guard<std::mutex> lock(cmd_mutex_);
      done_ += todo.size();
    }
    done_cv_.notify_all();
  }

  void Push(const Event& e) { events_.push_back(e); }
  Event Ev(EventType type, uint32_t backend = 0, int32_t code = 0, int32_t value = 0) {
    Event e {};
    e.type = type;
    e.backend = backend;
    e.code = code;
    e.value = value;
    return e;
  }

  // --- epoll registration ---------------------------------------------------------------------

  void Want(Side* s, uint32_t events) {
    if (s->fd < 0 || s->parked) return;
    if (s->registered && s->events == events) return;
    struct epoll_event ev {};
    ev.events = events;
    ev.data.ptr = s;
    if (epoll_ctl(epfd_, s->registered ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, s->fd, &ev) == 0) {
      s->registered = true;
      s->events = events;
    }
  }

  // The mask a relaying side wants: read unless it sent FIN or its bytes wait for the peer to drain
  // (backpressure); write while bytes wait for it. A parked side comes back once it can be read.
  void Update(Conn* c, Side* s) {
    if (c->phase != kRelaying || s->fd < 0) return;
    Side* peer = Peer(c, s);
    uint32_t mask = 0;
    if (!s->eof && peer->pending == nullptr) mask |= EPOLLIN;
    if (s->pending != nullptr) mask |= EPOLLOUT;
    if (s->parked) {
      if (!(mask & EPOLLIN)) return;
      s->parked = false;
      s->registered = false;
    }
    Want(s, mask);
  }

  void CloseSide(Side* s) {
    if (s->fd >= 0) stale_.push_back(s);
    // close() also takes it out of epoll: the descriptors are close-on-exec and vipd does not
    // fork while relaying, so no other process holds them registered.
    if (s->fd >= 0) close(s->fd);
    s->fd = -1;
    s->registered = false;
    s->parked = false;
    s->events = 0;
    free(s->pending);
    s->pending = nullptr;
    s->pending_len = s->pending_off = 0;
  }

  // --- accepting ------------------------------------------------------------------------------

  void Accept() {
    for (int i = 0; i < kAcceptBatch; i++) {
      SockAddr peer;
      socklen_t len = sizeof peer;
      int fd = accept4(listen_fd_, &peer.sa, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
        if (errno == ECONNABORTED) continue;
        int err = errno;
        Push(Ev(kEvAcceptError, 0, err));
        if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
          // Level-triggered, the listener would wake this thread again at once: pause it.
          Listen(false);
          accept_resume_at_ = now_ + kAcceptPauseUs;
        }
        return;
      }
      Conn* c = NewConn();
      c->phase = kConnecting;
      c->client.role = kRoleClient;
      c->client.conn = c;
      c->client.fd = fd;
      c->client.activity = now_;
      c->att[0].side.role = kRoleAttempt;
      c->att[0].side.conn = c;
      c->att[1].side.role = kRoleAttempt;
      c->att[1].side.conn = c;
      c->accepted = now_;
      EndpointOf(peer, &c->family, c->remote_addr, &c->remote_port);
      c->next = conns_;
      if (conns_ != nullptr) conns_->prev = c;
      conns_ = c;
      engine_->conns.fetch_add(1, std::memory_order_relaxed);
      if (engine_->observe) {
        SockAddr local;
        socklen_t llen = sizeof local;
        uint8_t family = 0;
        // Of the same family as the client's, mapped or not: one TCP connection.
        if (getsockname(fd, &local.sa, &llen) == 0) EndpointOf(local, &family, c->local_addr, &c->local_port);
        Event e = Ev(kEvOpened);
        Addresses(c, &e);
        Push(e);
      }
      // Not in epoll until a backend is connected: its bytes wait in the kernel (pauseOnConnect),
      // so a retry never has to replay them, and a client that resets meanwhile is found at its
      // first read, as a paused net.Socket would find it. One epoll_ctl per client, not two.
      ConnectNext(c);
      RunDeferred();
    }
  }

  void Addresses(Conn* c, Event* e) {
    e->family = c->family;
    memcpy(e->local_addr, c->local_addr, sizeof e->local_addr);
    memcpy(e->remote_addr, c->remote_addr, sizeof e->remote_addr);
    e->local_port = c->local_port;
    e->remote_port = c->remote_port;
  }

  // --- choosing a backend (backend-pool.ts) ---------------------------------------------------

  static bool Tried(const Conn* c, const Backend* b) {
    for (int i = 0; i < c->tried_count; i++)
      if (c->tried[i] == b) return true;
    return false;
  }

  // roundrobin: the next eligible backend in turn; leastconn: the fewest connections, ties in
  // turn. `healthy_only` false falls back to those marked down (never refuse the control plane).
  BackendRef Scan(const Conn* c, bool healthy_only, bool advance) {
    size_t n = backends_.size();
    BackendRef best;
    size_t best_index = 0;
    for (size_t i = 0; i < n; i++) {
      size_t index = (cursor_ + i) % n;
      const BackendRef& b = backends_[index];
      if (b->draining.load(std::memory_order_relaxed)) continue;
      if (healthy_only && !b->routable.load(std::memory_order_relaxed)) continue;
      if (Tried(c, b.get())) continue;
      if (!s_.leastconn) {
        best = b;
        best_index = index;
        break;
      }
      if (!best || b->active.load(std::memory_order_relaxed) < best->active.load(std::memory_order_relaxed)) {
        best = b;
        best_index = index;
      }
    }
    if (best && advance) cursor_ = (best_index + 1) % n;
    return best;
  }

  BackendRef Pick(const Conn* c) {
    BackendRef b = Scan(c, true, true);
    return b ? b : Scan(c, false, true);
  }

  // --- connecting (relay.ts, "Connecting") ------------------------------------------------------

  bool ConnectNext(Conn* c) {
    BackendRef b = Pick(c);
    if (!b) {
      if (c->att[0].live) return false;
      Unserved(c, c->tried_count == 0 ? 1 : 2, 0);
      return false;
    }
    Launch(c, b, false);
    return true;
  }

  void Launch(Conn* c, const BackendRef& b, bool spare) {
    Attempt* a = c->att[0].live ? &c->att[1] : &c->att[0];
    if (c->tried_count < sizeof c->tried / sizeof c->tried[0]) c->tried[c->tried_count++] = b.get();
    a->backend = b;
    a->started = now_;
    a->hedged = false;
    a->spare = spare;
    a->live = true;
    a->side.eof = a->side.shut = false;
    a->side.bytes_read = 0;
    int fd = socket(b->addr.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int err = 0;
    if (fd < 0) {
      // Known by fd -1 then: RunDeferred fails the live attempt that has none.
      err = errno;
    } else {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      if (connect(fd, &b->addr.sa, SockLen(b->addr)) < 0 && errno != EINPROGRESS)
        err = errno;
    }
    a->side.fd = fd;
    a->side.registered = false;
    a->side.parked = false;
    if (err != 0) {
      deferred_.push_back({c, fd, err});
      return;
    }
    Want(&a->side, EPOLLOUT);
    Arm(c);
  }

  void RunDeferred() {
    while (!deferred_.empty()) {
      Deferred d = deferred_.back();
      deferred_.pop_back();
      Conn* c = d.conn;
      if (c->phase != kConnecting) continue;
      for (Attempt& a : c->att) {
        if (a.live && a.side.fd == d.fd) {
          AttemptFailed(c, &a, d.err);
          break;
        }
      }
    }
  }

  int64_t HedgeDelay() const { return s_.hedge_delay_us; }

  bool Overdue(const Attempt* a, int64_t now) const {
    int64_t hedge = HedgeDelay();
    return hedge > 0 && now - a->started >= hedge;
  }

  // The timer of a connecting connection: its next hedge moment or connect deadline.
  void Arm(Conn* c) {
    Attempt* first = &c->att[0];
    if (c->phase != kConnecting || !first->live) {
      timers_.Remove(c);
      return;
    }
    int64_t limit = s_.connect_timeout_us;
    int64_t at = first->started + limit;
    if (c->att[1].live) {
      at = std::min(at, c->att[1].started + limit);
    } else if (!first->hedged) {
      int64_t hedge = HedgeDelay();
      if (hedge > 0 && hedge < limit) at = std::min(at, first->started + hedge);
    }
    timers_.Set(c, at);
  }

  void ConnectTimerDue(Conn* c) {
    int64_t limit = s_.connect_timeout_us;
    if (c->att[1].live && now_ - c->att[1].started >= limit) AttemptFailed(c, &c->att[1], kReasonTimeout);
    if (c->phase != kConnecting) return;
    if (c->att[0].live && now_ - c->att[0].started >= limit) AttemptFailed(c, &c->att[0], kReasonTimeout);
    if (c->phase != kConnecting || !c->att[0].live) return;
    Attempt* left = &c->att[0];
    if (!c->att[1].live && !left->hedged && Overdue(left, now_)) {
      left->hedged = true;
      BackendRef b = Scan(c, true, false);  // a hedge is a spare, not a turn of the rotation
      if (b) {
        left->backend->hedges.fetch_add(1, std::memory_order_relaxed);
        Launch(c, b, true);
        return;
      }
    }
    Arm(c);
  }

  // An attempt failed (an error, or no answer within connectTimeout).
  void AttemptFailed(Conn* c, Attempt* a, int reason) {
    if (c->phase != kConnecting || !a->live) return;
    BackendRef backend = a->backend;
    CloseSide(&a->side);
    a->live = false;
    a->backend.reset();
    if (a == &c->att[0] && c->att[1].live) {
      // The second attempt becomes the first.
      std::swap(c->att[0], c->att[1]);
      stale_.push_back(&c->att[0].side);
      stale_.push_back(&c->att[1].side);
      FixSide(c, &c->att[0]);
      FixSide(c, &c->att[1]);
    }
    backend->connect_failures.fetch_add(1, std::memory_order_relaxed);
    c->failures++;
    Attempt* left = c->att[0].live ? &c->att[0] : nullptr;
    Next next = kNextNone;
    if (c->client_gone) {
      next = kNextNone;
    } else if (left != nullptr && !Overdue(left, now_)) {
      next = kNextOther;
    } else if (c->failures <= s_.retries && ConnectNext(c)) {
      if (left != nullptr) left->hedged = true;
      next = kNextRetry;
    } else if (left != nullptr) {
      next = kNextOther;
    }
    if (next == kNextRetry) engine_->retries.fetch_add(1, std::memory_order_relaxed);
    Event e = Ev(kEvConnectFailed, backend->id, reason);
    e.next = next;
    e.connecting = 1;
    Push(e);
    if (c->phase == kDone) return;  // ConnectNext found nothing: unserved, aborted
    if (next == kNextNone) {
      if (!c->client_gone) Unserved(c, 3, reason);
      else Abort(c);
    } else {
      Arm(c);
    }
  }

  // After a swap the epoll data pointers must follow the attempt's Side to its new slot.
  void FixSide(Conn* c, Attempt* a) {
    a->side.conn = c;
    if (a->side.fd >= 0 && a->side.registered && !a->side.parked) {
      struct epoll_event ev {};
      ev.events = a->side.events;
      ev.data.ptr = &a->side;
      epoll_ctl(epfd_, EPOLL_CTL_MOD, a->side.fd, &ev);
    }
  }

  void Unserved(Conn* c, int kind, int reason) {
    engine_->unserved.fetch_add(1, std::memory_order_relaxed);
    Push(Ev(kEvUnserved, 0, kind, reason));
    Abort(c);
  }

  void Connected(Conn* c, Attempt* a) {
    timers_.Remove(c);
    Attempt* other = a == &c->att[0] ? &c->att[1] : &c->att[0];
    BackendRef loser;
    if (other->live) {
      loser = other->backend;
      CloseSide(&other->side);
      other->live = false;
      other->backend.reset();
    }
    if (a != &c->att[0]) {
      std::swap(c->att[0], c->att[1]);
      stale_.push_back(&c->att[0].side);
      stale_.push_back(&c->att[1].side);
      FixSide(c, &c->att[0]);
      a = &c->att[0];
    }
    Backend* b = a->backend.get();
    Push(Ev(kEvConnected, b->id, 0, static_cast<int32_t>(std::min<int64_t>(now_ - a->started, INT32_MAX))));
    if (a->spare && loser) {
      b->hedge_wins.fetch_add(1, std::memory_order_relaxed);
      Push(Ev(kEvHedgeWon, b->id, static_cast<int32_t>(loser->id)));
    }
    c->phase = kRelaying;
    b->active.fetch_add(1, std::memory_order_relaxed);
    b->total.fetch_add(1, std::memory_order_relaxed);
    Side* up = &a->side;
    up->activity = now_;
    c->client.activity = now_;
    if (!c->held.empty()) {
      // A replay after a backend closed unanswered: the client's first flight again.
      WriteTo(c, up, &c->client, c->held.data(), c->held.size());
      if (c->phase != kRelaying) return;  // done, or swapped again for another backend
    }
    if (c->replayable && c->failures < s_.retries) {
      c->unanswered = true;
    } else {
      c->unanswered = false;
      std::vector<char>().swap(c->held);
    }
    Update(c, up);
    Update(c, &c->client);
    if (s_.idle_timeout_us > 0) RearmInactivity(c);
  }

  // --- relaying ---------------------------------------------------------------------------------

  Side* Peer(Conn* c, Side* s) { return s == &c->client ? &c->att[0].side : &c->client; }

  void OnSide(Side* s, uint32_t ev) {
    Conn* c = s->conn;
    if (c->phase == kDone) return;
    if (c->phase == kConnecting) {
      if (s->role == kRoleClient) {
        // Errors only are registered: a reset client. A FIN alone is not reported here; its bytes
        // and its FIN are read once a backend is connected.
        if (ev & (EPOLLERR | EPOLLHUP)) {
          c->client_gone = true;
          Abort(c);
        }
        return;
      }
      Attempt* a = s == &c->att[0].side ? &c->att[0] : &c->att[1];
      // An event for an attempt that failed or moved slots earlier in this batch: level-triggered,
      // the live one is reported again at its new place.
      if (!a->live || a->side.fd < 0) return;
      // A failed connect is reported with EPOLLERR (and EPOLLHUP); writable alone is connected,
      // so the common case needs no getsockopt.
      if ((ev & EPOLLOUT) && !(ev & (EPOLLERR | EPOLLHUP))) {
        Connected(c, a);
        return;
      }
      int err = 0;
      socklen_t len = sizeof err;
      if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
      AttemptFailed(c, a, err != 0 ? err : ECONNREFUSED);
      return;
    }
    Side* peer = Peer(c, s);
    if (ev & EPOLLERR) {
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (s != &c->client && ClosedUnanswered(c, err != 0 ? err : ECONNRESET)) return;
      Abort(c);
      return;
    }
    if (ev & EPOLLOUT) {
      Flush(c, s);
      if (c->phase != kRelaying) return;
    }
    if (ev & (EPOLLIN | EPOLLHUP)) {
      if (!s->eof && peer->pending == nullptr) Readable(c, s);
      if (c->phase != kRelaying) return;
      if (ev & EPOLLHUP) {
        if (!s->eof && peer->pending != nullptr) {
          // Hung up with bytes still to forward to a slow peer: out of epoll (HUP cannot be
          // masked) until the peer drains; Flush() brings it back.
          epoll_ctl(epfd_, EPOLL_CTL_DEL, s->fd, nullptr);
          s->registered = false;
          s->parked = true;
        } else if (!s->eof) {
          // Still bytes to read before its FIN (reads are capped per wake-up): level-triggered,
          // the hang-up comes back with them next turn.
        } else if (!(s->eof && s->shut && s->pending == nullptr)) {
          // Reset (or gone) while bytes wait for it, or before we sent our FIN: it cannot be served.
          Abort(c);
        } else {
          MaybeDone(c);
        }
      }
    }
  }

  void Readable(Conn* c, Side* s) {
    Side* peer = Peer(c, s);
    bool from_client = s == &c->client;
    for (int i = 0; i < kReadsPerWake; i++) {
      ssize_t n = recv(s->fd, scratch_, kScratch, 0);
      if (n > 0) {
        s->activity = now_;
        s->bytes_read += static_cast<uint64_t>(n);
        (from_client ? engine_->bytes_in : engine_->bytes_out).fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
        if (c->unanswered) {
          if (from_client) {
            Hold(c, scratch_, static_cast<size_t>(n));
          } else {
            c->unanswered = false;
            std::vector<char>().swap(c->held);
          }
        }
        WriteTo(c, peer, s, scratch_, static_cast<size_t>(n));
        if (c->phase != kRelaying || peer->pending != nullptr) return;
        if (static_cast<size_t>(n) < kScratch) return;
        continue;
      }
      if (n == 0) {
        Eof(c, s);
        return;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
      if (!from_client && ClosedUnanswered(c, errno)) return;
      Abort(c);
      return;
    }
  }

  void Hold(Conn* c, const char* data, size_t n) {
    if (!c->replayable) return;
    if (c->held.empty() && static_cast<uint8_t>(data[0]) != kTlsHandshake) {
      c->replayable = false;
      return;
    }
    if (c->held.size() + n > kReplayLimit) {
      c->replayable = false;
      std::vector<char>().swap(c->held);
      return;
    }
    c->held.insert(c->held.end(), data, data + n);
  }

  // Writes to `to` what was read from `from`; the rest waits in `to`'s pending buffer and `from`
  // stops being read until it is flushed (backpressure).
  void WriteTo(Conn* c, Side* to, Side* from, const char* data, size_t n) {
    if (to->pending != nullptr) {
      Append(to, data, n);
      return;
    }
    ssize_t w = send(to->fd, data, n, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        // A backend reset before answering: the client's first flight goes to another one.
        if (to == &c->att[0].side && ClosedUnanswered(c, errno)) return;
        Abort(c);
        return;
      }
      w = 0;
    }
    if (w > 0) to->activity = now_;
    if (static_cast<size_t>(w) == n) return;
    Append(to, data + w, n - static_cast<size_t>(w));
    Update(c, to);
    Update(c, from);
  }

  static void Append(Side* to, const char* data, size_t n) {
    size_t have = to->pending_len - to->pending_off;
    char* buf = static_cast<char*>(malloc(have + n));
    if (have > 0) memcpy(buf, to->pending + to->pending_off, have);
    memcpy(buf + have, data, n);
    free(to->pending);
    to->pending = buf;
    to->pending_len = have + n;
    to->pending_off = 0;
  }

  void Flush(Conn* c, Side* s) {
    Side* peer = Peer(c, s);
    while (s->pending != nullptr) {
      ssize_t w = send(s->fd, s->pending + s->pending_off, s->pending_len - s->pending_off, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (w < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
        if (s == &c->att[0].side && ClosedUnanswered(c, errno)) return;
        Abort(c);
        return;
      }
      s->activity = now_;
      s->pending_off += static_cast<size_t>(w);
      if (s->pending_off == s->pending_len) {
        free(s->pending);
        s->pending = nullptr;
        s->pending_len = s->pending_off = 0;
      }
    }
    Update(c, s);
    if (peer->eof) {
      // The peer's FIN waited for its bytes: pass it on now.
      if (!s->shut) {
        shutdown(s->fd, SHUT_WR);
        s->shut = true;
      }
      MaybeDone(c);
      return;
    }
    Update(c, peer);
  }

  void Eof(Conn* c, Side* s) {
    if (s != &c->client && ClosedUnanswered(c, kReasonClosedUnanswered)) return;
    Side* peer = Peer(c, s);
    s->eof = true;
    // The other side's FIN came first and everything is delivered: close now, without the
    // epoll_ctl and shutdown a half-close would need (the common end of a request).
    if (peer->eof && s->pending == nullptr && peer->pending == nullptr) {
      Finish(c);
      return;
    }
    Update(c, s);
    if (peer->pending == nullptr && !peer->shut) {
      shutdown(peer->fd, SHUT_WR);
      peer->shut = true;
    }
    // After its FIN, this side gets the FIN timeout (if shorter than idle): silence ends the pair.
    int64_t fin = s_.fin_timeout_us;
    int64_t idle = s_.idle_timeout_us;
    if (fin > 0 && (idle == 0 || fin < idle)) {
      c->fin_armed |= s == &c->client ? 1 : 2;
      RearmInactivity(c);
    }
    MaybeDone(c);
  }

  // Both sides sent FIN and everything was delivered: a clean close.
  void MaybeDone(Conn* c) {
    Side* up = &c->att[0].side;
    if (c->client.eof && up->eof && c->client.pending == nullptr && up->pending == nullptr) Finish(c);
  }

  // The backend closed or reset before its first byte: swap it for another one if the client's
  // bytes allow (relay.ts, "Retry before the first answer").
  bool ClosedUnanswered(Conn* c, int reason) {
    Attempt* a = &c->att[0];
    if (!c->unanswered || c->phase != kRelaying) return false;
    if (!c->replayable || c->client.eof || a->side.bytes_read > 0) return false;
    c->unanswered = false;
    c->failures++;
    BackendRef backend = a->backend;
    Detach(c);
    backend->connect_failures.fetch_add(1, std::memory_order_relaxed);
    CloseSide(&a->side);
    a->live = false;
    a->backend.reset();
    c->phase = kConnecting;
    free(c->client.pending);  // nothing the backend sent: nothing to the client
    c->client.pending = nullptr;
    c->client.pending_len = c->client.pending_off = 0;
    Want(&c->client, 0);  // its bytes wait in the kernel again
    timers_.Remove(c);
    c->fin_armed = 0;
    bool retrying = ConnectNext(c);
    if (retrying) {
      engine_->retries.fetch_add(1, std::memory_order_relaxed);
      engine_->unanswered_retries.fetch_add(1, std::memory_order_relaxed);
    }
    Event e = Ev(kEvConnectFailed, backend->id, reason);
    e.next = retrying ? kNextRetry : kNextNone;
    e.connecting = 0;
    Push(e);
    return true;
  }

  // --- timers -----------------------------------------------------------------------------------

  void RearmInactivity(Conn* c) {
    int64_t at = INT64_MAX;
    int64_t client_limit = (c->fin_armed & 1) ? s_.fin_timeout_us : s_.idle_timeout_us;
    int64_t backend_limit = (c->fin_armed & 2) ? s_.fin_timeout_us : s_.idle_timeout_us;
    if (client_limit > 0) at = std::min(at, c->client.activity + client_limit);
    if (backend_limit > 0) at = std::min(at, c->att[0].side.activity + backend_limit);
    if (at == INT64_MAX) timers_.Remove(c);
    else timers_.Set(c, at);
  }

  void InactivityDue(Conn* c) {
    int64_t client_limit = (c->fin_armed & 1) ? s_.fin_timeout_us : s_.idle_timeout_us;
    int64_t backend_limit = (c->fin_armed & 2) ? s_.fin_timeout_us : s_.idle_timeout_us;
    bool client_idle = client_limit > 0 && now_ - c->client.activity >= client_limit;
    bool backend_idle = backend_limit > 0 && now_ - c->att[0].side.activity >= backend_limit;
    if (!client_idle && !backend_idle) {
      RearmInactivity(c);
      return;
    }
    if ((client_idle && (c->fin_armed & 1)) || (backend_idle && (c->fin_armed & 2))) {
      engine_->fin_timeouts.fetch_add(1, std::memory_order_relaxed);
      Push(Ev(kEvFinTimeout));
    }
    Abort(c);
  }

  void RunTimers() {
    while (!timers_.empty() && timers_.top()->timer_at <= now_) {
      Conn* c = timers_.top();
      timers_.Remove(c);
      if (c->phase == kConnecting) ConnectTimerDue(c);
      else if (c->phase == kRelaying) InactivityDue(c);
      RunDeferred();
    }
  }

  // TCP keepalive for connections that outlived the sweep period: short ones never pay for it.
  void Sweep() {
    next_sweep_ = now_ + s_.keepalive_us;
    for (Conn* c = conns_; c != nullptr; c = c->next) {
      if (c->keepalive || c->phase != kRelaying || now_ - c->accepted < s_.keepalive_us) continue;
      c->keepalive = true;
      // As Node's setKeepAlive(true, 30 s) sets it (libuv): a dead peer is found 40 s after it
      // went silent, not the kernel's default 75 s x 9 later.
      int one = 1, idle = kKeepAliveIdleS, interval = kKeepAliveIntervalS, count = kKeepAliveCount;
      for (int fd : {c->client.fd, c->att[0].side.fd}) {
        if (fd < 0) continue;
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
      }
    }
  }

  // --- the end ----------------------------------------------------------------------------------

  void Detach(Conn* c) {
    if (c->phase != kRelaying || !c->att[0].backend) return;
    Backend* b = c->att[0].backend.get();
    int64_t left = b->active.fetch_sub(1, std::memory_order_relaxed) - 1;
    if (left == 0 && b->draining.load(std::memory_order_relaxed)) Push(Ev(kEvBackendIdle, b->id));
  }

  void Abort(Conn* c) { Finish(c); }

  void Finish(Conn* c) {
    if (c->phase == kDone) return;
    Detach(c);
    c->phase = kDone;
    timers_.Remove(c);
    CloseSide(&c->client);
    for (Attempt& a : c->att) {
      CloseSide(&a.side);
      a.live = false;
      a.backend.reset();
    }
    if (engine_->observe) {
      Event e = Ev(kEvClosed);
      Addresses(c, &e);
      Push(e);
    }
    if (c->prev != nullptr) c->prev->next = c->next;
    else conns_ = c->next;
    if (c->next != nullptr) c->next->prev = c->prev;
    // Events later in this epoll batch may still point at it: it is freed after the batch.
    retired_.push_back(c);
    int64_t left = engine_->conns.fetch_sub(1, std::memory_order_acq_rel) - 1;
    if (left == 0 && !engine_->accepting.load(std::memory_order_acquire)) Push(Ev(kEvDrained));
  }

  // Finished connections, freed (or kept for reuse) once no event of the current batch can name them.
  std::vector<Conn*> retired_;
  std::vector<Conn*> pool_;
  static constexpr size_t kPoolMax = 1024;

  void FreeRetired() {
    for (Conn* c : retired_) {
      if (pool_.size() < kPoolMax) {
        *c = Conn();
        c->phase = kDone;  // an event that still names it (it cannot, see CloseSide) is ignored
        pool_.push_back(c);
      } else {
        delete c;
      }
    }
    retired_.clear();
  }

  Conn* NewConn() {
    if (pool_.empty()) return new Conn();
    Conn* c = pool_.back();
    pool_.pop_back();
    return c;
  }
};

void Engine::Close() {
  if (closed) return;
  closed = true;
  accepting.store(false);
  for (auto& w : workers) w->Post({Command::kExit, 0}, false);
  for (auto& w : workers) w->Join();
  workers.clear();
  if (listen_fd >= 0) close(listen_fd);
  listen_fd = -1;
  if (tsfn != nullptr) {
    napi_release_threadsafe_function(tsfn, napi_tsfn_abort);
    tsfn = nullptr;
  }
}

// --- N-API ------------------------------------------------------------------------------------

#define CHECK_NAPI(env, call)                                                                  \
  do {                                                                                         \
    if ((call) != napi_ok) {                                                                   \
      const napi_extended_error_info* info_ = nullptr;                                         \
      napi_get_last_error_info((env), &info_);                                                 \
      bool pending_ = false;                                                                   \
      napi_is_exception_pending((env), &pending_);                                             \
      if (!pending_) {                                                                         \
        napi_throw_error((env), "VIPD_NATIVE",                                                 \
                         info_ != nullptr && info_->error_message != nullptr ? info_->error_message \
                                                                             : "N-API call failed"); \
      }                                                                                        \
      return nullptr;                                                                          \
    }                                                                                          \
  } while (0)

napi_value ThrowErrno(napi_env env, const char* syscall, int err) {
  char message[256];
  snprintf(message, sizeof message, "%s: %s", syscall, strerror(err));
  napi_throw_error(env, uv_err_name(-err), message);
  return nullptr;
}

napi_value Undefined(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

Engine* Unwrap(napi_env env, napi_callback_info info, size_t* argc, napi_value* argv) {
  napi_value self;
  if (napi_get_cb_info(env, info, argc, argv, &self, nullptr) != napi_ok) return nullptr;
  void* data = nullptr;
  if (napi_unwrap(env, self, &data) != napi_ok || data == nullptr) {
    napi_throw_type_error(env, "ERR_INVALID_THIS", "not a RelayEngine");
    return nullptr;
  }
  return static_cast<Engine*>(data);
}

bool GetNumber(napi_env env, napi_value v, double* out, const char* what) {
  if (napi_get_value_double(env, v, out) != napi_ok) {
    char message[128];
    snprintf(message, sizeof message, "%s must be a number", what);
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
    return false;
  }
  return true;
}

// An IPv4 or IPv6 address in text (no brackets, no zone) into `out`, its family set, port 0.
bool GetAddress(napi_env env, napi_value v, SockAddr* out) {
  char buf[64];
  size_t len = 0;
  *out = SockAddr {};
  if (napi_get_value_string_utf8(env, v, buf, sizeof buf, &len) == napi_ok) {
    if (inet_pton(AF_INET, buf, &out->v4.sin_addr) == 1) {
      out->v4.sin_family = AF_INET;
      return true;
    }
    if (inet_pton(AF_INET6, buf, &out->v6.sin6_addr) == 1) {
      out->v6.sin6_family = AF_INET6;
      return true;
    }
  }
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected an IPv4 or IPv6 address");
  return false;
}

void SetPort(SockAddr* a, uint16_t port) {
  if (a->sa.sa_family == AF_INET6) a->v6.sin6_port = htons(port);
  else a->v4.sin_port = htons(port);
}

uint16_t PortOf(const SockAddr& a) {
  return ntohs(a.sa.sa_family == AF_INET6 ? a.v6.sin6_port : a.v4.sin_port);
}

// The queued events as one ArrayBuffer, or nullptr when there are none.
napi_value TakeBatch(napi_env env, Engine* e) {
  std::vector<Event> batch;
  {
    std::lock_guard<std::mutex> lock(e->out_mutex);
    batch.swap(e->outbox);
  }
  if (batch.empty()) return nullptr;
  void* bytes = nullptr;
  napi_value ab;
  if (napi_create_arraybuffer(env, batch.size() * sizeof(Event), &bytes, &ab) != napi_ok) return nullptr;
  memcpy(bytes, batch.data(), batch.size() * sizeof(Event));
  return ab;
}

// On the JS thread: hand the queued events to the callback as one ArrayBuffer.
void CallJs(napi_env env, napi_value callback, void* context, void* data) {
  Engine* e = static_cast<Engine*>(context);
  if (env == nullptr || e == nullptr) return;
  e->notified.store(false);
  napi_value ab = TakeBatch(env, e);
  if (ab == nullptr) return;
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  napi_call_function(env, undefined, callback, 1, &ab, nullptr);
}

// When the environment goes away (the process or the worker thread exits) with the engine still
// open: stop its threads and release the threadsafe function while that still exists. Registered
// after the function, so it runs before the function's own cleanup (hooks run last-in first-out);
// without it, an engine finalized after that cleanup released a freed function (SIGABRT at exit).
void CleanupHook(void* arg) {
  Engine* e = static_cast<Engine*>(arg);
  e->hooked = false;
  e->Close();
}

void Finalize(napi_env env, void* data, void* hint) {
  Engine* e = static_cast<Engine*>(data);
  if (e->hooked) napi_remove_env_cleanup_hook(env, CleanupHook, e);
  e->Close();
  delete e;
}

// new RelayEngine(onEvents, threads, observeConnections)
napi_value New(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_value self;
  napi_value target;
  CHECK_NAPI(env, napi_get_new_target(env, info, &target));
  if (target == nullptr) {
    napi_throw_type_error(env, "ERR_CONSTRUCT_CALL_REQUIRED", "RelayEngine must be called with new");
    return nullptr;
  }
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, &self, nullptr));
  napi_valuetype t0;
  CHECK_NAPI(env, napi_typeof(env, argv[0], &t0));
  double threads = 1;
  bool observe = false;
  if (argc < 3 || t0 != napi_function || !GetNumber(env, argv[1], &threads, "threads") ||
      napi_get_value_bool(env, argv[2], &observe) != napi_ok || threads < 1 || threads > 64) {
    if (!(argc < 3 || t0 != napi_function)) {
      bool pending = false;
      napi_is_exception_pending(env, &pending);
      if (pending) return nullptr;
    }
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected (onEvents: function, threads: 1-64, observe: boolean)");
    return nullptr;
  }
  Engine* e = new Engine();
  e->thread_count = static_cast<int>(threads);
  e->observe = observe;
  napi_value name;
  CHECK_NAPI(env, napi_create_string_utf8(env, "vipd relay events", NAPI_AUTO_LENGTH, &name));
  if (napi_create_threadsafe_function(env, argv[0], nullptr, name, 0, 1, nullptr, nullptr, e, CallJs, &e->tsfn) !=
      napi_ok) {
    delete e;
    CHECK_NAPI(env, napi_generic_failure);
  }
  // Not keeping the loop alive until it listens (see Listen).
  napi_unref_threadsafe_function(env, e->tsfn);
  if (napi_add_env_cleanup_hook(env, CleanupHook, e) == napi_ok) e->hooked = true;
  if (napi_wrap(env, self, e, Finalize, nullptr, &e->wrapper) != napi_ok) {
    e->Close();
    delete e;
    CHECK_NAPI(env, napi_generic_failure);
  }
  return self;
}

// listen(host, port, backlog) -> the bound port; starts the threads.
napi_value Listen(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  Engine* e = Unwrap(env, info, &argc, argv);
  if (e == nullptr) return nullptr;
  if (e->closed || e->started) {
    napi_throw_error(env, "ERR_INVALID_STATE", "RelayEngine already listening or closed");
    return nullptr;
  }
  SockAddr addr {};
  double port = 0, backlog = 511;
  if (argc < 3 || !GetAddress(env, argv[0], &addr) || !GetNumber(env, argv[1], &port, "port") ||
      !GetNumber(env, argv[2], &backlog, "backlog"))
    return nullptr;
  SetPort(&addr, static_cast<uint16_t>(port));
  int fd = socket(addr.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return ThrowErrno(env, "socket", errno);
  int one = 1;
  if (addr.sa.sa_family == AF_INET6) {
    // Set either way, not left to net.ipv6.bindv6only: "::" is dual stack (IPv4 clients arrive
    // mapped, the one listener of `bind :::6443 v4v6`); a specific address takes its own family only.
    int v6only = IN6_IS_ADDR_UNSPECIFIED(&addr.v6.sin6_addr) ? 0 : 1;
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only) < 0) {
      int err = errno;
      close(fd);
      return ThrowErrno(env, "setsockopt", err);
    }
  }
  // As libuv does for a Node listener: a restart may bind while old connections are in TIME_WAIT.
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  // Accepted sockets inherit it (Linux copies the listener's socket): one system call less per client.
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (bind(fd, &addr.sa, SockLen(addr)) < 0) {
    int err = errno;
    close(fd);
    return ThrowErrno(env, "bind", err);
  }
  if (listen(fd, static_cast<int>(backlog)) < 0) {
    int err = errno;
    close(fd);
    return ThrowErrno(env, "listen", err);
  }
  socklen_t len = sizeof addr;
  getsockname(fd, &addr.sa, &len);
  e->listen_fd = fd;
  e->accepting.store(true);
  for (int i = 0; i < e->thread_count; i++) {
    auto w = std::make_unique<Worker>(e);
    int err = w->Init();
    if (err != 0) {
      e->Close();
      return ThrowErrno(env, "epoll", err);
    }
    e->workers.push_back(std::move(w));
  }
  for (auto& w : e->workers) w->Start();
  e->started = true;
  // A listening engine keeps its loop alive and is not collected, as a listening net.Server: its
  // owner may drop it and still expect it to serve until close().
  napi_ref_threadsafe_function(env, e->tsfn);
  uint32_t refs = 0;
  napi_reference_ref(env, e->wrapper, &refs);
  e->pinned = true;
  napi_value result;
  CHECK_NAPI(env, napi_create_int32(env, PortOf(addr), &result));
  return result;
}

// configure(connectTimeoutMs, retries, idleTimeoutMs, hedgeDelayMs, finTimeoutMs, leastconn, keepAliveMs)
napi_value Configure(napi_env env, napi_callback_info info) {
  size_t argc = 7;
  napi_value argv[7];
  Engine* e = Unwrap(env, info, &argc, argv);
  if (e == nullptr) return nullptr;
  double v[5];
  const char* names[] = {"connectTimeoutMs", "retries", "idleTimeoutMs", "hedgeDelayMs", "finTimeoutMs"};
  if (argc < 7) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "configure takes 7 arguments");
    return nullptr;
  }
  for (int i = 0; i < 5; i++)
    if (!GetNumber(env, argv[i], &v[i], names[i])) return nullptr;
  bool leastconn = false;
  double keepalive = kKeepAliveSweepMs;
  if (napi_get_value_bool(env, argv[5], &leastconn) != napi_ok || !GetNumber(env, argv[6], &keepalive, "keepAliveMs")) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "leastconn must be a boolean");
    return nullptr;
  }
  {
    std::lock_guard<std::mutex> lock(e->config_mutex);
    Settings& s = e->settings;
    s.connect_timeout_us = static_cast<int64_t>(v[0] * 1000);
    s.retries = std::max(0, std::min(100, static_cast<int>(v[1])));
    s.idle_timeout_us = static_cast<int64_t>(v[2] * 1000);
    s.hedge_delay_us = static_cast<int64_t>(v[3] * 1000);
    s.fin_timeout_us = static_cast<int64_t>(v[4] * 1000);
    s.leastconn = leastconn;
    s.keepalive_us = std::max<int64_t>(1000000, static_cast<int64_t>(keepalive * 1000));  // a sweep a second at most
    e->config_version.fetch_add(1, std::memory_order_release);
  }
  return Undefined(env);  // the threads pick it up at their next loop turn
}

bool GetProperty(napi_env env, napi_value obj, const char* key, napi_value* out) {
  if (napi_get_named_property(env, obj, key, out) != napi_ok) return false;
  return true;
}

// setBackends([{id, address, port, routable, draining}]): the whole list; existing ids keep their counters.
napi_value SetBackends(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  Engine* e = Unwrap(env, info, &argc, argv);
  if (e == nullptr) return nullptr;
  bool is_array = false;
  if (argc < 1 || napi_is_array(env, argv[0], &is_array) != napi_ok || !is_array) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected an array of backends");
    return nullptr;
  }
  uint32_t n = 0;
  CHECK_NAPI(env, napi_get_array_length(env, argv[0], &n));
  std::vector<BackendRef> list;
  std::vector<BackendRef> old;
  {
    std::lock_guard<std::mutex> lock(e->config_mutex);
    old = e->backends;
  }
  for (uint32_t i = 0; i < n; i++) {
    napi_value item, v;
    CHECK_NAPI(env, napi_get_element(env, argv[0], i, &item));
    double id = 0, port = 0;
    bool routable = true, draining = false;
    SockAddr address {};
    if (!GetProperty(env, item, "id", &v) || !GetNumber(env, v, &id, "id")) return nullptr;
    if (!GetProperty(env, item, "address", &v) || !GetAddress(env, v, &address)) return nullptr;
    if (!GetProperty(env, item, "port", &v) || !GetNumber(env, v, &port, "port")) return nullptr;
    if (!GetProperty(env, item, "routable", &v) || napi_get_value_bool(env, v, &routable) != napi_ok) return nullptr;
    if (!GetProperty(env, item, "draining", &v) || napi_get_value_bool(env, v, &draining) != napi_ok) return nullptr;
    BackendRef b;
    for (const BackendRef& o : old)
      if (o->id == static_cast<uint32_t>(id)) b = o;
    if (!b) {
      // Only a new backend gets an address: the threads connect to existing ones without a lock
      // (a backend whose address changes is a new backend with a new id, frontend.ts).
      b = std::make_shared<Backend>();
      b->id = static_cast<uint32_t>(id);
      b->addr = address;
      SetPort(&b->addr, static_cast<uint16_t>(port));
    }
    b->routable.store(routable);
    b->draining.store(draining);
    list.push_back(b);
  }
  {
    std::lock_guard<std::mutex> lock(e->config_mutex);
    e->backends = std::move(list);
    e->config_version.fetch_add(1, std::memory_order_release);
  }
  return Undefined(env);
}

BackendRef FindBackend(Engine* e, uint32_t id) {
  std::lock_guard<std::mutex> lock(e->config_mutex);
  for (const BackendRef& b : e->backends)
    if (b->id == id) return b;
  return nullptr;
}

// setBackendState(id, routable, draining): a health change, seen by the threads at their next pick.
napi_value SetBackendState(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  Engine* e = Unwrap(env, info, &argc, argv);
  if (e == nullptr) return nullptr;
  double id = 0;
  bool routable = true, draining = false;
  if (argc < 3 || !GetNumber(env, argv[0], &id, "id") || napi_get_value_bool(env, argv[1], &routable) != napi_ok ||
      napi_get_value_bool(env, argv[2], &draining) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected (id, routable, draining)");
    return nullptr;
  }
  BackendRef b = FindBackend(e, static_cast<uint32_t>(id));
  if (b) {
    b->routable.store(routable);
    b->draining.store(draining);
  }
  return Undefined(env);
}

// destroyBackend(id) -> connections it carried: closes them all (on-marked-down shutdown-sessions).
napi_value DestroyBackend(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  Engine* e = Unwrap(env, info, &argc, argv);
  if (e == nullptr) return nullptr;
  double id = 0;
  if (argc < 1 || !GetNumber(env, argv[0], &id, "id")) return nullptr;
  BackendRef b = FindBackend(e, static_cast<uint32_t>(id));
  int64_t n = b ? b->active.load() : 0;
  for (auto& w : e->workers) w->Post({Command::kDestroyBackend, static_cast<uint32_t>(id)}, true);
  napi_value result;
  CHECK_NAPI(env, napi_create_int64(env, n, &result));
  return result;
}

napi_value StopAccepting(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  Engine* e = Unwrap(env, info, &argc, nullptr);
  if (e == nullptr) return nullptr;
  e->accepting.store(false);
  for (auto& w : e->workers) w->Post({Command::kStopAccepting, 0}, true);
  if (e->listen_fd >= 0) {
    close(e->listen_fd);
    e->listen_fd = -1;
  }
  if (e->tsfn != nullptr) napi_unref_threadsafe_function(env, e->tsfn);
  // Nothing left to drain: say so, as the last connection closing would have.
  if (e->conns.load() == 0) {
    std::vector<Event> drained(1);
    drained[0] = Event {};
    drained[0].type = kEvDrained;
    e->Emit(&drained);
  }
  return Undefined(env);
}

napi_value DestroyAll(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  Engine* e = Unwrap(env, info, &argc, nullptr);
  if (e == nullptr) return nullptr;
  for (auto& w : e->workers) w->Post({Command::kDestroyAll, 0}, true);
  return Undefined(env);
}

// stats() -> [connections, bytesIn, bytesOut, retries, unansweredRetries, unserved, finTimeouts]
napi_value Stats(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  Engine* e = Unwrap(env, info, &argc, nullptr);
  if (e == nullptr) return nullptr;
  double values[] = {
      static_cast<double>(e->conns.load()),         static_cast<double>(e->bytes_in.load()),
      static_cast<double>(e->bytes_out.load()),     static_cast<double>(e->retries.load()),
      static_cast<double>(e->unanswered_retries.load()), static_cast<double>(e->unserved.load()),
      static_cast<double>(e->fin_timeouts.load()),
  };
  napi_value arr;
  CHECK_NAPI(env, napi_create_array_with_length(env, 7, &arr));
  for (uint32_t i = 0; i < 7; i++) {
    napi_value v;
    CHECK_NAPI(env, napi_create_double(env, values[i], &v));
    CHECK_NAPI(env, napi_set_element(env, arr, i, v));
  }
  return arr;
}

// backendStats(id) -> [active, total, connectFailures, hedges, hedgeWins] (zeros for an unknown id)
napi_value BackendStats(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  Engine* e = Unwrap(env, info, &argc, argv);
  if (e == nullptr) return nullptr;
  double id = 0;
  if (argc < 1 || !GetNumber(env, argv[0], &id, "id")) return nullptr;
  BackendRef b = FindBackend(e, static_cast<uint32_t>(id));
  double values[5] = {0, 0, 0, 0, 0};
  if (b) {
    values[0] = static_cast<double>(b->active.load());
    values[1] = static_cast<double>(b->total.load());
    values[2] = static_cast<double>(b->connect_failures.load());
    values[3] = static_cast<double>(b->hedges.load());
    values[4] = static_cast<double>(b->hedge_wins.load());
  }
  napi_value arr;
  CHECK_NAPI(env, napi_create_array_with_length(env, 5, &arr));
  for (uint32_t i = 0; i < 5; i++) {
    napi_value v;
    CHECK_NAPI(env, napi_create_double(env, values[i], &v));
    CHECK_NAPI(env, napi_set_element(env, arr, i, v));
  }
  return arr;
}

// takeEvents() -> the events not yet handed over (an ArrayBuffer), or undefined: after close(),
// whose threads' last reports never reach the callback.
napi_value TakeEvents(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  Engine* e = Unwrap(env, info, &argc, nullptr);
  if (e == nullptr) return nullptr;
  napi_value ab = TakeBatch(env, e);
  return ab == nullptr ? Undefined(env) : ab;
}

// close(): stops the threads (every connection still open is aborted) and the listener. Idempotent.
napi_value CloseFn(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  Engine* e = Unwrap(env, info, &argc, nullptr);
  if (e == nullptr) return nullptr;
  e->Close();
  if (e->pinned) {
    e->pinned = false;
    uint32_t refs = 0;
    napi_reference_unref(env, e->wrapper, &refs);
  }
  return Undefined(env);
}

napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {
      {"listen", nullptr, Listen, nullptr, nullptr, nullptr, napi_default_method, nullptr},
      {"configure", nullptr, Configure, nullptr, nullptr, nullptr, napi_default_method, nullptr},
      {"setBackends", nullptr, SetBackends, nullptr, nullptr, nullptr, napi_default_method, nullptr},
      {"setBackendState", nullptr, SetBackendState, nullptr, nullptr, nullptr, napi_default_method, nullptr},
      {"destroyBackend", nullptr, DestroyBackend, nullptr, nullptr, nullptr, napi_default_method, nullptr},
      {"stopAccepting", nullptr, StopAccepting, nullptr, nullptr, nullptr, napi_default_method, nullptr},
      {"destroyAll", nullptr, DestroyAll, nullptr, nullptr, nullptr, napi_default_method, nullptr},
      {"stats", nullptr, Stats, nullptr, nullptr, nullptr, napi_default_method, nullptr},
      {"backendStats", nullptr, BackendStats, nullptr, nullptr, nullptr, napi_default_method, nullptr},
      {"takeEvents", nullptr, TakeEvents, nullptr, nullptr, nullptr, napi_default_method, nullptr},
      {"close", nullptr, CloseFn, nullptr, nullptr, nullptr, napi_default_method, nullptr},
  };
  napi_value cls;
  CHECK_NAPI(env, napi_define_class(env, "RelayEngine", NAPI_AUTO_LENGTH, New, nullptr,
                                    sizeof methods / sizeof methods[0], methods, &cls));
  CHECK_NAPI(env, napi_set_named_property(env, exports, "RelayEngine", cls));
  napi_value size;
  CHECK_NAPI(env, napi_create_int32(env, sizeof(Event), &size));
  CHECK_NAPI(env, napi_set_named_property(env, exports, "EVENT_BYTES", size));
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
