// vipd_packet: an AF_PACKET socket for Node, written against plain node_api.h (no node-addon-api),
// so it builds against any Node >= 16 headers with nothing but a C++ compiler.
//
// It exists because gratuitous ARP needs raw Ethernet frames: neither dgram nor net can send one,
// and shelling out to arping per frame is too slow for a takeover burst. It does two things:
//   - send(frame): write one complete Ethernet frame to the bound interface;
//   - deliver every received ARP frame (ETH_P_ARP) to a JS callback, from a uv_poll_t on the fd,
//     so nothing ever blocks the event loop.
//
// JS: new PacketSocket(ifindex, onFrame) / .send(buf) / .close() / .ref() / .unref(),
//     ifNameToIndex(name).

#include <node_api.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
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

PacketSocket* Unwrap(napi_env env, napi_callback_info info, size_t* argc, napi_value* argv) {
  napi_value self;
  void* data = nullptr;
  if (napi_get_cb_info(env, info, argc, argv, &self, nullptr) != napi_ok) return nullptr;
  if (napi_unwrap(env, self, &data) != napi_ok || data == nullptr) {
    napi_throw_type_error(env, "ERR_INVALID_THIS", "not a PacketSocket");
    return nullptr;
  }
  return static_cast<PacketSocket*>(data);
}

// new PacketSocket(ifindex, onFrame)
napi_value New(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_value self;
  napi_value new_target;
  CHECK_NAPI(env, napi_get_cb_info(env, info, &argc, argv, &self, nullptr));
  CHECK_NAPI(env, napi_get_new_target(env, info, &new_target));
  if (new_target == nullptr) {
    napi_throw_type_error(env, "ERR_CONSTRUCT_CALL_REQUIRED", "PacketSocket must be called with new");
    return nullptr;
  }
  napi_valuetype t0, t1;
  CHECK_NAPI(env, napi_typeof(env, argv[0], &t0));
  CHECK_NAPI(env, napi_typeof(env, argv[1], &t1));
  int32_t ifindex = 0;
  if (argc < 2 || t0 != napi_number || t1 != napi_function ||
      napi_get_value_int32(env, argv[0], &ifindex) != napi_ok || ifindex <= 0) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected (ifindex: positive integer, onFrame: function)");
    return nullptr;
  }

  // Protocol 0 receives nothing until bind() names ETH_P_ARP together with the interface (packet(7)).
  // Opening with ETH_P_ARP directly would queue ARP from every interface in the gap before bind().
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return ThrowErrno(env, "socket(AF_PACKET)", errno);
  struct sockaddr_ll addr;
  memset(&addr, 0, sizeof addr);
  addr.sll_family = AF_PACKET;
  addr.sll_protocol = htons(ETH_P_ARP);
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

// close(): idempotent. Drops the listener too, so nothing keeps the JS object alive.
napi_value Close(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  PacketSocket* s = Unwrap(env, info, &argc, nullptr);
  if (s == nullptr) return nullptr;
  StopAndClose(s);
  ReleaseJs(env, s);
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  return undefined;
}

napi_value Ref(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  PacketSocket* s = Unwrap(env, info, &argc, nullptr);
  if (s == nullptr) return nullptr;
  if (s->poll != nullptr) uv_ref(reinterpret_cast<uv_handle_t*>(s->poll));
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  return undefined;
}

napi_value Unref(napi_env env, napi_callback_info info) {
  size_t argc = 0;
  PacketSocket* s = Unwrap(env, info, &argc, nullptr);
  if (s == nullptr) return nullptr;
  if (s->poll != nullptr) uv_unref(reinterpret_cast<uv_handle_t*>(s->poll));
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  return undefined;
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

napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor methods[] = {
      {"send", nullptr, Send, nullptr, nullptr, nullptr, napi_default_method, nullptr},
      {"close", nullptr, Close, nullptr, nullptr, nullptr, napi_default_method, nullptr},
      {"ref", nullptr, Ref, nullptr, nullptr, nullptr, napi_default_method, nullptr},
      {"unref", nullptr, Unref, nullptr, nullptr, nullptr, napi_default_method, nullptr},
  };
  napi_value cls;
  CHECK_NAPI(env, napi_define_class(env, "PacketSocket", NAPI_AUTO_LENGTH, New, nullptr,
                                    sizeof methods / sizeof methods[0], methods, &cls));
  napi_value fn;
  CHECK_NAPI(env, napi_create_function(env, "ifNameToIndex", NAPI_AUTO_LENGTH, IfNameToIndex, nullptr, &fn));
  CHECK_NAPI(env, napi_set_named_property(env, exports, "PacketSocket", cls));
  CHECK_NAPI(env, napi_set_named_property(env, exports, "ifNameToIndex", fn));
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
