// vipd_packet: an AF_PACKET socket for Node, written against plain node_api.h (no node-addon-api),
// so it builds against any Node >= 16 headers with nothing but a C++ compiler.
//
// It exists because gratuitous ARP needs raw Ethernet frames: neither dgram nor net can send one,
// and shelling out to arping per frame is too slow for a takeover burst. It does two things:
//   - send(frame): write one complete Ethernet frame to the bound interface;
//   - deliver every received ARP frame (ETH_P_ARP), or IPv6 frame (ETH_P_IPV6) for Neighbor
//     Discovery, that its optional filter keeps to a JS callback,
//     from a uv_poll_t on the fd, so nothing ever blocks the event loop.
// And, because dgram cannot attach a socket filter either, it opens the election's UDP socket with
// a classic BPF program (src/native/bpf.ts) attached before bind; Node adopts the fd.
// And, for the takeover's tickle ACKs (src/takeover/), a raw IPv4 and a raw IPv6 socket: those
// segments carry the VIP and a dead node's connection as source, which no TCP socket of this host owns.
//
// JS: new PacketSocket(ifindex, onFrame, filter?, ethertype?) / .send(buf) / .setFilter(program) / .close() /
//     .ref() / .unref(), new RawIpv4Socket(sendBufferBytes?) / .send(packet, dstIp) / .close(),
//     new RawIpv6Socket(sendBufferBytes?) / .send(packet, dstIp) / .close(),
//     ifNameToIndex(name), openUdpSocket(address, port, filter, recvBufferBytes),
//     attachFilter(fd, program), clearReuseAddr(fd).

#include <node_api.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip6.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

namespace {

// Larger than any untagged Ethernet frame (1514); ARP frames are 42-60 bytes, so anything longer
// is not ARP and is dropped as truncated.
constexpr size_t kRecvBufferSize = 2048;
// Frames read per poll wake-up. The poll is level-triggered, so whatever is left is read on the
// next loop iteration: an ARP flood cannot starve timers and the election's UDP socket.
constexpr int kMaxFramesPerWakeup = 256;

struct PacketSocket {
  napi_env env = nullptr;
  napi_ref on_frame = nullptr;             // strong while open: the socket owns its listener
  napi_async_context async_context = nullptr;
  uv_poll_t* poll = nullptr;               // heap: uv_close() completes after this struct may be gone
  int fd = -1;
  bool dispatching = false;                // inside OnReadable's JS callbacks
  bool finalized = false;                  // the finalizer ran while dispatching: free on the way out
  unsigned char buf[kRecvBufferSize];
};

#define CHECK_NAPI(env, call)                                          \
  do {                                                                 \
    if ((call) != napi_ok) {                                           \
      const napi_extended_error_info* info_ = nullptr;                 \
      napi_get_last_error_info((env), &info_);                         \
      bool pending_ = false;                                           \
      napi_is_exception_pending((env), &pending_);                     \
      if (!pending_) {                                                 \
        napi_throw_error((env), "VIPD_NATIVE",                         \
                         info_ != nullptr && info_->error_message != nullptr \
                             ? info_->error_message                    \
                             : "N-API call failed");                   \
      }                                                                \
      return nullptr;                                                  \
    }                                                                  \
  } while (0)

// Throws an Error whose `code` is the errno name (EPERM, ENODEV...) so JS can map it.
napi_value ThrowErrno(napi_env env, const char* syscall, int err) {
  char message[256];
  snprintf(message, sizeof message, "%s: %s", syscall, strerror(err));
  napi_throw_error(env, uv_err_name(-err), message);
  return nullptr;
}

// A classic BPF program from JS: a Buffer of struct sock_filter (8 bytes each, host byte order), as
// src/native/bpf.ts encodes it. Throws and returns false on anything else; the kernel checks the rest
// (jumps in range, a final return) and answers EINVAL.
bool GetFilter(napi_env env, napi_value value, struct sock_fprog* prog) {
  bool is_buffer = false;
  void* data = nullptr;
  size_t length = 0;
  if (napi_is_buffer(env, value, &is_buffer) != napi_ok || !is_buffer ||
      napi_get_buffer_info(env, value, &data, &length) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected a Buffer holding a classic BPF program");
    return false;
  }
  // A length that is not a whole number of instructions would be truncated silently by the count.
  if (length == 0 || length % sizeof(struct sock_filter) != 0 ||
      length / sizeof(struct sock_filter) > BPF_MAXINSNS) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "a BPF program is 1 to 4096 instructions of 8 bytes each");
    return false;
  }
  prog->len = static_cast<unsigned short>(length / sizeof(struct sock_filter));
  prog->filter = static_cast<struct sock_filter*>(data);
  return true;
}

// The kernel copies the program in setsockopt and swaps it in with one RCU pointer update: every
// packet meets either the old filter or the new one, never none. Packets already queued stay queued.
int AttachFilter(int fd, const struct sock_fprog* prog) {
  return setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, prog, sizeof *prog) < 0 ? errno : 0;
}

// A non-blocking, close-on-exec socket with `filter` (if not null) attached before the caller binds
// it: a packet arriving in between would otherwise be queued unfiltered. Returns the fd, or -1 with
// an error thrown naming the failed call (`what` for socket()); a socket that cannot take the
// filter is closed.
int OpenFiltered(napi_env env, int domain, int type, int protocol, const char* what, const struct sock_fprog* filter) {
  int fd = socket(domain, type | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
  if (fd < 0) {
    ThrowErrno(env, what, errno);
    return -1;
  }
  if (filter != nullptr) {
    int err = AttachFilter(fd, filter);
    if (err != 0) {
      close(fd);
      ThrowErrno(env, "setsockopt(SO_ATTACH_FILTER)", err);
      return -1;
    }
  }
  return fd;
}

// Reads an fd argument: a non-negative int32.
bool GetFd(napi_env env, napi_value value, int* fd) {
  napi_valuetype type = napi_undefined;
  int32_t n = -1;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_number ||
      napi_get_value_int32(env, value, &n) != napi_ok || n < 0) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected a file descriptor (a non-negative integer)");
    return false;
  }
  *fd = n;
  return true;
}

void OnPollClosed(uv_handle_t* handle) {
  delete reinterpret_cast<uv_poll_t*>(handle);
}

// Touches no JS values, so it is safe from close() and from the finalizer alike. The poll is
// stopped before the fd is closed: libuv must not be watching a closed (or reused) descriptor.
void StopAndClose(PacketSocket* s) {
  if (s->poll != nullptr) {
    s->poll->data = nullptr;
    uv_poll_stop(s->poll);
    uv_close(reinterpret_cast<uv_handle_t*>(s->poll), OnPollClosed);
    s->poll = nullptr;
  }
  if (s->fd >= 0) {
    close(s->fd);
    s->fd = -1;
  }
}

void ReleaseJs(napi_env env, PacketSocket* s) {
  if (s->on_frame != nullptr) {
    napi_delete_reference(env, s->on_frame);
    s->on_frame = nullptr;
  }
  if (s->async_context != nullptr) {
    napi_async_destroy(env, s->async_context);
    s->async_context = nullptr;
  }
}

// The JS object was garbage collected without close(): do not leak the fd or the poll handle.
void Finalize(napi_env env, void* data, void* /*hint*/) {
  PacketSocket* s = static_cast<PacketSocket*>(data);
  StopAndClose(s);
  ReleaseJs(env, s);
  if (s->dispatching) {
    s->finalized = true;
  } else {
    delete s;
  }
}

void OnReadable(uv_poll_t* handle, int /*status*/, int /*events*/) {
  // A non-zero status (POLLERR, e.g. ENETDOWN when the link goes down) is cleared by reading it,
  // so it goes through the same recvfrom loop: the kernel re-arms the socket when the link is up.
  PacketSocket* s = static_cast<PacketSocket*>(handle->data);
  if (s == nullptr || s->fd < 0) return;
  napi_env env = s->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  s->dispatching = true;

  for (int i = 0; i < kMaxFramesPerWakeup && s->fd >= 0 && s->on_frame != nullptr; i++) {
    struct sockaddr_ll from;
    socklen_t fromlen = sizeof from;
    ssize_t n = recvfrom(s->fd, s->buf, sizeof s->buf, MSG_DONTWAIT | MSG_TRUNC,
                         reinterpret_cast<struct sockaddr*>(&from), &fromlen);
    if (n < 0) {
      if (errno == EINTR) continue;
      // EAGAIN: drained. Anything else is a one-shot socket error (ENETDOWN on link down) that
      // this read has just cleared; the level-triggered poll calls back if frames are waiting.
      break;
    }
    if (static_cast<size_t>(n) > sizeof s->buf) continue;  // truncated: not an ARP frame
    // Frames this host sends (the kernel answering ARP for the VIP with our MAC) are copied to
    // packet sockets as PACKET_OUTGOING; they are not someone else's claim, so skip them here.
    if (from.sll_pkttype == PACKET_OUTGOING) continue;

    napi_handle_scope frame_scope;
    if (napi_open_handle_scope(env, &frame_scope) != napi_ok) break;
    napi_value buffer = nullptr, callback = nullptr, recv = nullptr, result = nullptr;
    bool ok = napi_create_buffer_copy(env, static_cast<size_t>(n), s->buf, nullptr, &buffer) == napi_ok &&
              napi_get_reference_value(env, s->on_frame, &callback) == napi_ok && callback != nullptr &&
              napi_get_global(env, &recv) == napi_ok;  // make_callback needs an object receiver
    if (ok) {
      napi_status status = napi_make_callback(env, s->async_context, recv, callback, 1, &buffer, &result);
      bool pending = false;
      napi_is_exception_pending(env, &pending);
      if (status != napi_ok || pending) {
        // A throwing listener must surface like any other uncaught exception in a callback,
        // not vanish inside the addon.
        napi_value error = nullptr;
        if (pending && napi_get_and_clear_last_exception(env, &error) == napi_ok) napi_fatal_exception(env, error);
        napi_close_handle_scope(env, frame_scope);
        break;
      }
    }
    napi_close_handle_scope(env, frame_scope);
    if (!ok) break;
  }

  s->dispatching = false;
  napi_close_handle_scope(env, scope);
  if (s->finalized) delete s;
}

napi_value Undefined(napi_env env) {
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  return undefined;
}

// A constructor's arguments and `this`; false (with an error pending) unless called with `new`.
bool ConstructCall(napi_env env, napi_callback_info info, size_t* argc, napi_value* argv, napi_value* self,
                   const char* must_new) {
  napi_value new_target;
  if (napi_get_cb_info(env, info, argc, argv, self, nullptr) != napi_ok ||
      napi_get_new_target(env, info, &new_target) != napi_ok) {
    napi_throw_error(env, "ERR_NAPI", "cannot read the constructor call");
    return false;
  }
  if (new_target == nullptr) {
    napi_throw_type_error(env, "ERR_CONSTRUCT_CALL_REQUIRED", must_new);
    return false;
  }
  return true;
}

// The native object behind `this` (and the call's arguments), or nullptr with a TypeError thrown.
template <typename T>
T* UnwrapAs(napi_env env, napi_callback_info info, size_t* argc, napi_value* argv, const char* what) {
  napi_value self;
  void* data = nullptr;
  if (napi_get_cb_info(env, info, argc, argv, &self, nullptr) != napi_ok) return nullptr;
  if (napi_unwrap(env, self, &data) != napi_ok || data == nullptr) {
    napi_throw_type_error(env, "ERR_INVALID_THIS", what);
    return nullptr;
  }
  return static_cast<T*>(data);
}

PacketSocket* Unwrap(napi_env env, napi_callback_info info, size_t* argc, napi_value* argv) {
  return UnwrapAs<PacketSocket>(env, info, argc, argv, "not a PacketSocket");
}

// new PacketSocket(ifindex, onFrame, filter?, ethertype?): ethertype ETH_P_ARP unless given (ETH_P_IPV6
// for Neighbor Discovery).
napi_value New(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_value self;
  if (!ConstructCall(env, info, &argc, argv, &self, "PacketSocket must be called with new")) return nullptr;
  napi_valuetype t0, t1;
  CHECK_NAPI(env, napi_typeof(env, argv[0], &t0));
  CHECK_NAPI(env, napi_typeof(env, argv[1], &t1));
  int32_t ifindex = 0;
  if (argc < 2 || t0 != napi_number || t1 != napi_function ||
      napi_get_value_int32(env, argv[0], &ifindex) != napi_ok || ifindex <= 0) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected (ifindex: positive integer, onFrame: function)");
    return nullptr;
  }
  struct sock_fprog filter = {0, nullptr};
  napi_valuetype t2 = napi_undefined;
  if (argc >= 3) CHECK_NAPI(env, napi_typeof(env, argv[2], &t2));
  bool filtered = t2 != napi_undefined && t2 != napi_null;
  if (filtered && !GetFilter(env, argv[2], &filter)) return nullptr;
  uint32_t ethertype = ETH_P_ARP;
  if (argc >= 4) {
    napi_valuetype t3;
    CHECK_NAPI(env, napi_typeof(env, argv[3], &t3));
    if (t3 != napi_undefined &&
        (t3 != napi_number || napi_get_value_uint32(env, argv[3], &ethertype) != napi_ok ||
         (ethertype != ETH_P_ARP && ethertype != ETH_P_IPV6))) {
      napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "ethertype must be ETH_P_ARP (0x0806) or ETH_P_IPV6 (0x86dd)");
      return nullptr;
    }
  }

  // Protocol 0 receives nothing until bind() names the ethertype together with the interface
  // (packet(7)). Opening with it directly would queue frames from every interface in the gap before bind().
  int fd = OpenFiltered(env, AF_PACKET, SOCK_RAW, 0, "socket(AF_PACKET)", filtered ? &filter : nullptr);
  if (fd < 0) return nullptr;
  struct sockaddr_ll addr;
  memset(&addr, 0, sizeof addr);
  addr.sll_family = AF_PACKET;
  addr.sll_protocol = htons(static_cast<uint16_t>(ethertype));
  addr.sll_ifindex = ifindex;
  if (bind(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof addr) < 0) {
    int err = errno;
    close(fd);
    return ThrowErrno(env, "bind(AF_PACKET)", err);
  }

  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) {
    close(fd);
    CHECK_NAPI(env, napi_generic_failure);
  }
  PacketSocket* s = new PacketSocket();
  s->env = env;
  s->fd = fd;
  s->poll = new uv_poll_t;
  int rc = uv_poll_init(loop, s->poll, fd);
  if (rc != 0) {
    delete s->poll;  // never initialised, so no uv_close
    s->poll = nullptr;
    StopAndClose(s);
    delete s;
    return ThrowErrno(env, "uv_poll_init", -rc);
  }
  s->poll->data = s;

  napi_value resource_name;
  bool ok = napi_create_string_utf8(env, "vipd:PacketSocket", NAPI_AUTO_LENGTH, &resource_name) == napi_ok &&
            napi_async_init(env, self, resource_name, &s->async_context) == napi_ok &&
            napi_create_reference(env, argv[1], 1, &s->on_frame) == napi_ok &&
            napi_wrap(env, self, s, Finalize, nullptr, nullptr) == napi_ok;
  if (!ok) {
    StopAndClose(s);
    ReleaseJs(env, s);
    delete s;
    CHECK_NAPI(env, napi_generic_failure);
  }
  rc = uv_poll_start(s->poll, UV_READABLE, OnReadable);
  if (rc != 0) {
    StopAndClose(s);  // the wrapped object stays, closed; its finalizer frees `s`
    ReleaseJs(env, s);
    return ThrowErrno(env, "uv_poll_start", -rc);
  }
  return self;
}

// send(frame: Buffer): one complete Ethernet frame, destination MAC first.
napi_value Send(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  PacketSocket* s = Unwrap(env, info, &argc, argv);
  if (s == nullptr) return nullptr;
  bool is_buffer = false;
  if (argc < 1 || napi_is_buffer(env, argv[0], &is_buffer) != napi_ok || !is_buffer) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected a Buffer holding an Ethernet frame");
    return nullptr;
  }
  void* data = nullptr;
  size_t length = 0;
  CHECK_NAPI(env, napi_get_buffer_info(env, argv[0], &data, &length));
  if (s->fd < 0) return ThrowErrno(env, "send", EBADF);
  if (length < ETH_HLEN) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "a frame needs at least a 14-byte Ethernet header");
    return nullptr;
  }
  // Non-blocking: a full device queue is ENOBUFS/EAGAIN to the caller, never a stalled loop.
  ssize_t n;
  do {
    n = send(s->fd, data, length, MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return ThrowErrno(env, "send", errno);
  napi_value result;
  CHECK_NAPI(env, napi_create_int64(env, n, &result));
  return result;
}

// setFilter(program: Buffer): replaces the filter (or sets the first) on the open socket, atomically.
napi_value SetFilter(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  PacketSocket* s = Unwrap(env, info, &argc, argv);
  if (s == nullptr) return nullptr;
  struct sock_fprog filter;
  if (argc < 1) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected a Buffer holding a classic BPF program");
    return nullptr;
  }
  if (!GetFilter(env, argv[0], &filter)) return nullptr;
  if (s->fd < 0) return ThrowErrno(env, "setsockopt(SO_ATTACH_FILTER)", EBADF);
  int err = AttachFilter(s->fd, &filter);
  if (err != 0) return ThrowErrno(env, "setsockopt(SO_ATTACH_FILTER)", err);
  return Undefined(env);
}

// close(): idempotent. Drops the listener too, so nothing keeps the JS object alive.
napi_value Close(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  PacketSocket* s = Unwrap(env, info, &argc, nullptr);
  if (s == nullptr) return nullptr;
  StopAndClose(s);
  ReleaseJs(env, s);
  return Undefined(env);
}

napi_value Ref(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  PacketSocket* s = Unwrap(env, info, &argc, nullptr);
  if (s == nullptr) return nullptr;
  if (s->poll != nullptr) uv_ref(reinterpret_cast<uv_handle_t*>(s->poll));
  return Undefined(env);
}

napi_value Unref(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  PacketSocket* s = Unwrap(env, info, &argc, nullptr);
  if (s == nullptr) return nullptr;
  if (s->poll != nullptr) uv_unref(reinterpret_cast<uv_handle_t*>(s->poll));
  return Undefined(env);
}

// ---- RawIpv4Socket, RawIpv6Socket --------------------------------------------------------------
// Send complete IP packets, header included, built in JS (src/takeover/tickle.ts). For IPv4,
// IPPROTO_RAW implies IP_HDRINCL and makes the socket send-only (raw(7)): nothing is ever queued for
// reading, so there is no poll handle, only an fd. The kernel still fills in the IP checksum and the
// total length, and an identification when the header's is 0; it does not check that the source
// address is one of this host's, which is the point (and why it needs CAP_NET_RAW).
// For IPv6 the same: on Linux >= 4.5 an AF_INET6 IPPROTO_RAW socket implies IPV6_HDRINCL (raw(7),
// ipv6(7)) and receives nothing; the kernel sends the header as written (IPv6 has no header
// checksum, and the payload length is the caller's). sendto's sin6_port must be 0 or the socket's
// protocol (255): 0 here.

template <int Family>
struct RawSocket {
  int fd = -1;
};
using RawIpv4Socket = RawSocket<AF_INET>;
using RawIpv6Socket = RawSocket<AF_INET6>;

// What differs between the families: names in messages, the smallest packet, the destination.
template <int Family>
struct RawFamily;

template <>
struct RawFamily<AF_INET> {
  static constexpr const char* kClass = "RawIpv4Socket";
  static constexpr const char* kNotThis = "not a RawIpv4Socket";
  static constexpr const char* kMustNew = "RawIpv4Socket must be called with new";
  static constexpr const char* kSocketCall = "socket(AF_INET, SOCK_RAW)";
  static constexpr const char* kArgs = "expected (packet: Buffer, dstIp: IPv4 dotted quad)";
  static constexpr const char* kLength = "an IPv4 packet is 20 to 65535 bytes, header included";
  static constexpr size_t kMinLength = sizeof(struct iphdr);
  static constexpr size_t kMaxLength = IP_MAXPACKET;
  using Address = struct sockaddr_in;
  static bool Parse(const char* text, Address* dst) {
    memset(dst, 0, sizeof *dst);
    dst->sin_family = AF_INET;
    return inet_pton(AF_INET, text, &dst->sin_addr) == 1;
  }
};

template <>
struct RawFamily<AF_INET6> {
  static constexpr const char* kClass = "RawIpv6Socket";
  static constexpr const char* kNotThis = "not a RawIpv6Socket";
  static constexpr const char* kMustNew = "RawIpv6Socket must be called with new";
  static constexpr const char* kSocketCall = "socket(AF_INET6, SOCK_RAW)";
  static constexpr const char* kArgs = "expected (packet: Buffer, dstIp: IPv6 address)";
  static constexpr const char* kLength = "an IPv6 packet is 40 to 65575 bytes, header included";
  static constexpr size_t kMinLength = sizeof(struct ip6_hdr);
  static constexpr size_t kMaxLength = sizeof(struct ip6_hdr) + 65535;
  using Address = struct sockaddr_in6;
  // No zone ("%eth0"): inet_pton refuses it, and the VIPs and their clients are never link-local.
  // sin6_port stays 0: with IPPROTO_RAW anything else but 255 is EINVAL.
  static bool Parse(const char* text, Address* dst) {
    memset(dst, 0, sizeof *dst);
    dst->sin6_family = AF_INET6;
    return inet_pton(AF_INET6, text, &dst->sin6_addr) == 1;
  }
};

template <int Family>
void RawFinalize(napi_env /*env*/, void* data, void* /*hint*/) {
  RawSocket<Family>* s = static_cast<RawSocket<Family>*>(data);
  if (s->fd >= 0) close(s->fd);
  delete s;
}

// napi_define_class gives the methods a receiver signature: V8 itself refuses a call on anything but
// an object of that class ("Illegal invocation"), so an unwrapped pointer is always its struct.
template <int Family>
RawSocket<Family>* RawUnwrap(napi_env env, napi_callback_info info, size_t* argc, napi_value* argv) {
  return UnwrapAs<RawSocket<Family>>(env, info, argc, argv, RawFamily<Family>::kNotThis);
}

// new RawIpv4Socket(sendBufferBytes?), new RawIpv6Socket(sendBufferBytes?)
template <int Family>
napi_value RawNew(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_value self;
  if (!ConstructCall(env, info, &argc, argv, &self, RawFamily<Family>::kMustNew)) return nullptr;
  napi_valuetype t0 = napi_undefined;
  if (argc >= 1) CHECK_NAPI(env, napi_typeof(env, argv[0], &t0));
  int64_t sndbuf = 0;
  if (t0 != napi_undefined &&
      (t0 != napi_number || napi_get_value_int64(env, argv[0], &sndbuf) != napi_ok || sndbuf < 0 ||
       sndbuf > INT_MAX / 2)) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected (sendBufferBytes?: 0 to 2^30 - 1)");
    return nullptr;
  }
  int fd = socket(Family, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_RAW);
  if (fd < 0) return ThrowErrno(env, RawFamily<Family>::kSocketCall, errno);
  if (sndbuf > 0) {
    // Best effort, as for the UDP socket's SO_RCVBUF: SO_SNDBUFFORCE passes net.core.wmem_max but
    // needs CAP_NET_ADMIN; SO_SNDBUF is capped there silently.
    int size = static_cast<int>(sndbuf);
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &size, sizeof size) < 0) {
      setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    }
  }
  RawSocket<Family>* s = new RawSocket<Family>();
  s->fd = fd;
  if (napi_wrap(env, self, s, RawFinalize<Family>, nullptr, nullptr) != napi_ok) {
    close(fd);
    delete s;
    CHECK_NAPI(env, napi_generic_failure);
  }
  return self;
}

// send(packet: Buffer, dstIp: string): true when the kernel took the packet, false when it had no
// room (EAGAIN: the socket's send buffer is full of packets not yet gone, e.g. held in a neighbour
// queue while ARP or Neighbor Discovery resolves), so the caller backs off and retries. ENOBUFS is
// handled alike, though without IP_RECVERR raw_send_hdrinc() turns it into a silent drop and
// success: "sent" means handed to the kernel, not put on the wire. Anything else (EPERM from a
// firewall's drop, ENETUNREACH, EMSGSIZE past the MTU) throws with the errno name as `code`.
template <int Family>
napi_value RawSend(napi_env env, napi_callback_info info) {
  using F = RawFamily<Family>;
  size_t argc = 2;
  napi_value argv[2];
  RawSocket<Family>* s = RawUnwrap<Family>(env, info, &argc, argv);
  if (s == nullptr) return nullptr;
  bool is_buffer = false;
  napi_valuetype t1 = napi_undefined;
  if (argc >= 2) CHECK_NAPI(env, napi_typeof(env, argv[1], &t1));
  // Longer than any address text (INET6_ADDRSTRLEN is 46), so a truncated copy (which could parse)
  // is told from a real one.
  char address[64];
  size_t address_length = 0;
  typename F::Address dst;
  if (argc < 2 || napi_is_buffer(env, argv[0], &is_buffer) != napi_ok || !is_buffer || t1 != napi_string ||
      napi_get_value_string_utf8(env, argv[1], address, sizeof address, &address_length) != napi_ok ||
      address_length >= sizeof address - 1 || !F::Parse(address, &dst)) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", F::kArgs);
    return nullptr;
  }
  void* data = nullptr;
  size_t length = 0;
  CHECK_NAPI(env, napi_get_buffer_info(env, argv[0], &data, &length));
  if (length < F::kMinLength || length > F::kMaxLength) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", F::kLength);
    return nullptr;
  }
  if (s->fd < 0) return ThrowErrno(env, "sendto", EBADF);
  // The kernel routes by this address, not by the header's destination; the caller passes the same.
  ssize_t n;
  do {
    n = sendto(s->fd, data, length, MSG_DONTWAIT, reinterpret_cast<struct sockaddr*>(&dst), sizeof dst);
  } while (n < 0 && errno == EINTR);
  bool sent = n >= 0;
  if (!sent && errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOBUFS) return ThrowErrno(env, "sendto", errno);
  napi_value result;
  CHECK_NAPI(env, napi_get_boolean(env, sent, &result));
  return result;
}

// close(): idempotent.
template <int Family>
napi_value RawClose(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  RawSocket<Family>* s = RawUnwrap<Family>(env, info, &argc, nullptr);
  if (s == nullptr) return nullptr;
  if (s->fd >= 0) {
    close(s->fd);
    s->fd = -1;
  }
  return Undefined(env);
}

// Defines one of the two classes on `exports`.
template <int Family>
bool DefineRawClass(napi_env env, napi_value exports) {
  napi_property_descriptor raw_methods[] = {
      {"send", nullptr, RawSend<Family>, nullptr, nullptr, nullptr, napi_default_method, nullptr},
      {"close", nullptr, RawClose<Family>, nullptr, nullptr, nullptr, napi_default_method, nullptr},
  };
  napi_value cls;
  return napi_define_class(env, RawFamily<Family>::kClass, NAPI_AUTO_LENGTH, RawNew<Family>, nullptr,
                           sizeof raw_methods / sizeof raw_methods[0], raw_methods, &cls) == napi_ok &&
         napi_set_named_property(env, exports, RawFamily<Family>::kClass, cls) == napi_ok;
}

// ifNameToIndex(name): resolved in the caller's network namespace (what /sys may not show).
napi_value IfNameToIndex(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  char name[IF_NAMESIZE + 1];
  size_t length = 0;
  napi_valuetype type = napi_undefined;
  if (argc >= 1) napi_typeof(env, argv[0], &type);
  if (type != napi_string || napi_get_value_string_utf8(env, argv[0], name, sizeof name, &length) != napi_ok ||
      length == 0 || length >= IF_NAMESIZE) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected an interface name of 1 to 15 characters");
    return nullptr;
  }
  unsigned int index = if_nametoindex(name);
  if (index == 0) return ThrowErrno(env, "if_nametoindex", errno);
  napi_value result;
  CHECK_NAPI(env, napi_create_uint32(env, index, &result));
  return result;
}

// openUdpSocket(address, port, filter: Buffer | null, recvBufferBytes): a bound, non-blocking UDP
// socket's fd, for Node to adopt with dgram's bind({ fd }): AF_INET for a dotted quad, AF_INET6
// (IPV6_V6ONLY) for an IPv6 address. Throws with the errno name as `code`.
napi_value OpenUdpSocket(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  // Longer than any IPv6 text, so a truncated copy (which could parse) is told from a real one.
  char address[64];
  size_t address_length = 0;
  napi_valuetype types[4] = {napi_undefined, napi_undefined, napi_undefined, napi_undefined};
  for (size_t i = 0; i < argc && i < 4; i++) CHECK_NAPI(env, napi_typeof(env, argv[i], &types[i]));
  int32_t port = -1;
  int64_t rcvbuf = -1;
  struct sockaddr_in addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  struct sockaddr_in6 addr6;
  memset(&addr6, 0, sizeof addr6);
  addr6.sin6_family = AF_INET6;
  bool ok = argc >= 4 && types[0] == napi_string && types[1] == napi_number && types[3] == napi_number &&
            napi_get_value_string_utf8(env, argv[0], address, sizeof address, &address_length) == napi_ok &&
            address_length < sizeof address - 1;
  int family = AF_UNSPEC;
  if (ok && inet_pton(AF_INET, address, &addr.sin_addr) == 1) family = AF_INET;
  else if (ok && inet_pton(AF_INET6, address, &addr6.sin6_addr) == 1) family = AF_INET6;
  if (!ok || family == AF_UNSPEC || napi_get_value_int32(env, argv[1], &port) != napi_ok || port < 0 ||
      port > 65535 || napi_get_value_int64(env, argv[3], &rcvbuf) != napi_ok || rcvbuf < 0 || rcvbuf > INT_MAX / 2) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE",
                          "expected (address: IPv4 or IPv6 address, port: 0-65535, filter: Buffer | null, "
                          "recvBufferBytes: 0 to 2^30 - 1)");
    return nullptr;
  }
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr6.sin6_port = htons(static_cast<uint16_t>(port));
  struct sock_fprog filter = {0, nullptr};
  bool filtered = types[2] != napi_undefined && types[2] != napi_null;
  if (filtered && !GetFilter(env, argv[2], &filter)) return nullptr;

  int fd = OpenFiltered(env, family, SOCK_DGRAM, 0, family == AF_INET ? "socket(AF_INET)" : "socket(AF_INET6)",
                        filtered ? &filter : nullptr);
  if (fd < 0) return nullptr;
  if (family == AF_INET6) {
    int one = 1;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  }
  if (rcvbuf > 0) {
    // Best effort: SO_RCVBUFFORCE passes net.core.rmem_max but needs CAP_NET_ADMIN; SO_RCVBUF is
    // capped there silently. Either way the kernel doubles the value for its bookkeeping.
    int size = static_cast<int>(rcvbuf);
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) < 0) {
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
    }
  }
  // No SO_REUSEADDR: a second socket on this address and port fails with EADDRINUSE instead of
  // sharing (and, for unicast, stealing) the election's datagrams.
  int bound = family == AF_INET ? bind(fd, reinterpret_cast<struct sockaddr*>(&addr), sizeof addr)
                                 : bind(fd, reinterpret_cast<struct sockaddr*>(&addr6), sizeof addr6);
  if (bound < 0) {
    int err = errno;
    close(fd);
    return ThrowErrno(env, "bind", err);
  }
  napi_value result;
  if (napi_create_int32(env, fd, &result) != napi_ok) {
    close(fd);
    CHECK_NAPI(env, napi_generic_failure);
  }
  return result;
}

// attachFilter(fd, program): SO_ATTACH_FILTER on any socket, replacing its filter atomically.
napi_value AttachFilterFn(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  if (argc < 2) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected (fd: number, program: Buffer)");
    return nullptr;
  }
  int fd = -1;
  struct sock_fprog filter;
  if (!GetFd(env, argv[0], &fd) || !GetFilter(env, argv[1], &filter)) return nullptr;
  int err = AttachFilter(fd, &filter);
  if (err != 0) return ThrowErrno(env, "setsockopt(SO_ATTACH_FILTER)", err);
  return Undefined(env);
}

// clearReuseAddr(fd): turns SO_REUSEADDR off again. Node adopts an fd with libuv's uv_udp_open(),
// which turns it on; and two UDP sockets that both have it may share a port, whoever owns them (no
// uid check, unlike SO_REUSEPORT): any local process could then bind the election's address and
// port and, being the newer socket, receive its unicast datagrams. The kernel checks both sockets'
// flags at the second bind, so clearing ours makes such a bind fail with EADDRINUSE again.
napi_value ClearReuseAddr(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr));
  int fd = -1;
  if (argc < 1) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected a file descriptor (a non-negative integer)");
    return nullptr;
  }
  if (!GetFd(env, argv[0], &fd)) return nullptr;
  int off = 0;
  if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &off, sizeof off) < 0) {
    return ThrowErrno(env, "setsockopt(SO_REUSEADDR)", errno);
  }
  return Undefined(env);
}

napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {
      {"send", nullptr, Send, nullptr, nullptr, nullptr, napi_default_method, nullptr},
      {"setFilter", nullptr, SetFilter, nullptr, nullptr, nullptr, napi_default_method, nullptr},
      {"close", nullptr, Close, nullptr, nullptr, nullptr, napi_default_method, nullptr},
      {"ref", nullptr, Ref, nullptr, nullptr, nullptr, napi_default_method, nullptr},
      {"unref", nullptr, Unref, nullptr, nullptr, nullptr, napi_default_method, nullptr},
  };
  napi_value cls;
  CHECK_NAPI(env, napi_define_class(env, "PacketSocket", NAPI_AUTO_LENGTH, New, nullptr,
                                    sizeof methods / sizeof methods[0], methods, &cls));
  CHECK_NAPI(env, napi_set_named_property(env, exports, "PacketSocket", cls));
  if (!DefineRawClass<AF_INET>(env, exports) || !DefineRawClass<AF_INET6>(env, exports)) {
    CHECK_NAPI(env, napi_generic_failure);
  }
  struct {
    const char* name;
    napi_callback cb;
  } functions[] = {
      {"ifNameToIndex", IfNameToIndex},
      {"openUdpSocket", OpenUdpSocket},
      {"attachFilter", AttachFilterFn},
      {"clearReuseAddr", ClearReuseAddr},
  };
  for (const auto& f : functions) {
    napi_value fn;
    CHECK_NAPI(env, napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.cb, nullptr, &fn));
    CHECK_NAPI(env, napi_set_named_property(env, exports, f.name, fn));
  }
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
