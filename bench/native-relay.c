// The bench's native stand-in (`--with-native`, built and loaded by bench/native-relay.mjs): a
// relay written in C on the libuv loop of the Node process that loads it, as a Node-API addon. It
// does per connection what bench/handle-relay.mjs does (accept, getpeername, TCP_NODELAY on both
// sides, one connect at once, then relay both directions with half-close and backpressure), without
// a JavaScript object or callback per socket event. Unless started with --no-js it calls into
// JavaScript twice per session, when it picks the server and when the session ends, where a
// licgate with a native relay would keep its balancer and its session log. So native/relay is what
// Node's JavaScript handle layer costs per connection, on the same libuv loop and system calls.
#include <node_api.h>
#include <uv.h>
#include <stdlib.h>
#include <string.h>

typedef struct conn conn_t;

typedef struct side {
  uv_tcp_t tcp;
  conn_t *c;
  struct side *other;
  int eof;       /* this side sent its FIN (read EOF) */
  int inflight;  /* a write to this side is being flushed */
  int shut;      /* we asked libuv to send our FIN to this side */
  int fin_sent;  /* ... and it has */
} side_t;

struct conn {
  side_t client, server;
  uv_connect_t creq;
  int closing;
  int closed_handles;
  struct frontend *fe;
  unsigned long long up, down;
};

typedef struct frontend {
  uv_tcp_t listener;
  struct sockaddr_in to;
  napi_env env;
  napi_ref pick;   /* optional JS function called once per session, as a balancer in JS would be */
  napi_ref done;   /* optional JS function called when a session ends, as a log line would be */
  napi_async_context actx;
} frontend_t;

/* Every read lands here: it is written on at once (uv_try_write), and only what the kernel did not
 * take is copied out, into the write request, while that side stops reading. So an idle or a
 * request/response session holds no buffer at all. */
static char shared_buf[65536];

typedef struct wreq { uv_write_t req; side_t *to; char data[]; } wreq_t;

static void on_close(uv_handle_t *h) {
  conn_t *c = ((side_t *)h->data)->c;
  if (++c->closed_handles == 2) free(c);
}

/* Through napi_make_callback, as Node calls a socket's JavaScript: ticks and microtasks that the
 * call queues run before control returns to the loop. */
static void call_js(frontend_t *fe, napi_ref ref, conn_t *c) {
  napi_env env = fe->env;
  napi_handle_scope hs;
  napi_open_handle_scope(env, &hs);
  napi_value fn, recv, argv[2], result;
  napi_get_reference_value(env, ref, &fn);
  /* An object: napi_make_callback refuses `undefined` as the receiver (napi_object_expected) and
   * then calls nothing, which is how this stand-in first ran without its two calls. */
  napi_get_global(env, &recv);
  napi_create_double(env, (double)c->up, &argv[0]);
  napi_create_double(env, (double)c->down, &argv[1]);
  napi_status st = napi_make_callback(env, fe->actx, recv, fn, 2, argv, &result);
  if (st == napi_pending_exception) {
    /* No JavaScript is below us to rethrow it: without this the throw would vanish. */
    napi_value err;
    napi_get_and_clear_last_exception(env, &err);
    napi_fatal_exception(env, err);
  } else if (st != napi_ok) {
    napi_fatal_error("native-relay", NAPI_AUTO_LENGTH, "napi_make_callback failed", NAPI_AUTO_LENGTH);
  }
  napi_close_handle_scope(env, hs);
}

static void teardown(conn_t *c) {
  if (c->closing) return;
  c->closing = 1;
  if (c->fe->done) call_js(c->fe, c->fe->done, c);
  uv_close((uv_handle_t *)&c->client.tcp, on_close);
  uv_close((uv_handle_t *)&c->server.tcp, on_close);
}

/* Closed once both FINs are out: closing with a shutdown still queued would cancel it. */
static void maybe_done(conn_t *c) {
  if (c->client.fin_sent && c->server.fin_sent) teardown(c);
}

static void on_shutdown(uv_shutdown_t *req, int status) {
  side_t *to = (side_t *)req->data;
  free(req);
  if (to->c->closing) return;
  if (status < 0) { teardown(to->c); return; }
  to->fin_sent = 1;
  maybe_done(to->c);
}

static void send_fin(side_t *to) {
  if (to->shut || to->c->closing) return;
  to->shut = 1;
  uv_shutdown_t *req = malloc(sizeof *req);
  req->data = to;
  if (uv_shutdown(req, (uv_stream_t *)&to->tcp, on_shutdown) < 0) { free(req); teardown(to->c); }
}

static void on_alloc(uv_handle_t *h, size_t size, uv_buf_t *buf) {
  (void)h; (void)size;
  *buf = uv_buf_init(shared_buf, sizeof shared_buf);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

static void on_write(uv_write_t *r, int status) {
  wreq_t *w = (wreq_t *)r;
  side_t *to = w->to;
  free(w);
  conn_t *c = to->c;
  if (c->closing) return;
  if (status < 0) { teardown(c); return; }
  to->inflight = 0;
  side_t *from = to->other;
  if (from->eof) send_fin(to);
  else uv_read_start((uv_stream_t *)&from->tcp, on_alloc, on_read);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  side_t *from = (side_t *)s->data;
  side_t *to = from->other;
  conn_t *c = from->c;
  if (c->closing) return;
  if (n == UV_EOF) {
    from->eof = 1;
    uv_read_stop(s);
    if (!to->inflight) send_fin(to);
    return;
  }
  if (n < 0) { teardown(c); return; }
  if (n == 0) return;
  if (from == &c->client) c->up += n; else c->down += n;
  uv_buf_t b = uv_buf_init(buf->base, (unsigned)n);
  int w = uv_try_write((uv_stream_t *)&to->tcp, &b, 1);
  if (w == n) return;
  if (w < 0 && w != UV_EAGAIN) { teardown(c); return; }
  if (w < 0) w = 0;
  /* The rest waits in its own copy, and `from` stops reading until it is flushed. */
  size_t rest = (size_t)(n - w);
  wreq_t *req = malloc(sizeof *req + rest);
  memcpy(req->data, buf->base + w, rest);
  req->to = to;
  to->inflight = 1;
  uv_read_stop(s);
  uv_buf_t rb = uv_buf_init(req->data, (unsigned)rest);
  if (uv_write(&req->req, (uv_stream_t *)&to->tcp, &rb, 1, on_write) < 0) { free(req); teardown(c); }
}

static void on_connect(uv_connect_t *req, int status) {
  conn_t *c = (conn_t *)req->data;
  if (status < 0) { teardown(c); return; }
  uv_read_start((uv_stream_t *)&c->client.tcp, on_alloc, on_read);
  uv_read_start((uv_stream_t *)&c->server.tcp, on_alloc, on_read);
}

static void on_connection(uv_stream_t *server, int status) {
  frontend_t *fe = (frontend_t *)server->data;
  if (status < 0) return;
  conn_t *c = calloc(1, sizeof *c);
  c->fe = fe;
  c->client.c = c->server.c = c;
  c->client.other = &c->server;
  c->server.other = &c->client;
  uv_loop_t *loop = server->loop;
  uv_tcp_init(loop, &c->client.tcp);
  c->client.tcp.data = &c->client;
  if (uv_accept(server, (uv_stream_t *)&c->client.tcp) < 0) {
    c->closing = 1;
    c->closed_handles = 1; /* the server side was never opened */
    uv_close((uv_handle_t *)&c->client.tcp, on_close);
    return;
  }
  /* What every session does: the client's address for its log line, Nagle off on both sides. */
  struct sockaddr_storage peer;
  int len = sizeof peer;
  uv_tcp_getpeername(&c->client.tcp, (struct sockaddr *)&peer, &len);
  uv_tcp_nodelay(&c->client.tcp, 1);
  uv_tcp_init(loop, &c->server.tcp);
  c->server.tcp.data = &c->server;
  uv_tcp_nodelay(&c->server.tcp, 1);
  if (fe->pick) call_js(fe, fe->pick, c);
  c->creq.data = c;
  if (uv_tcp_connect(&c->creq, &c->server.tcp, (const struct sockaddr *)&fe->to, on_connect) < 0) teardown(c);
}

/* listen(host, port, toHost, toPort, pick?, done?) */
static napi_value js_listen(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  char host[64], to_host[64];
  size_t l;
  int32_t port, to_port;
  napi_get_value_string_utf8(env, argv[0], host, sizeof host, &l);
  napi_get_value_int32(env, argv[1], &port);
  napi_get_value_string_utf8(env, argv[2], to_host, sizeof to_host, &l);
  napi_get_value_int32(env, argv[3], &to_port);
  frontend_t *fe = calloc(1, sizeof *fe);
  fe->env = env;
  for (int i = 4; i < 6 && i < (int)argc; i++) {
    napi_valuetype t;
    napi_typeof(env, argv[i], &t);
    if (t == napi_function) napi_create_reference(env, argv[i], 1, i == 4 ? &fe->pick : &fe->done);
  }
  napi_value name;
  napi_create_string_utf8(env, "native-relay", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &fe->actx);
  uv_loop_t *loop;
  napi_get_uv_event_loop(env, &loop);
  uv_ip4_addr(to_host, to_port, &fe->to);
  struct sockaddr_in addr;
  uv_ip4_addr(host, port, &addr);
  uv_tcp_init(loop, &fe->listener);
  fe->listener.data = fe;
  int err = uv_tcp_bind(&fe->listener, (const struct sockaddr *)&addr, 0);
  if (!err) err = uv_listen((uv_stream_t *)&fe->listener, 4096, on_connection);
  if (err) napi_throw_error(env, uv_err_name(err), uv_strerror(err));
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "listen", NAPI_AUTO_LENGTH, js_listen, NULL, &fn);
  napi_set_named_property(env, exports, "listen", fn);
  return exports;
}
