/* Drives libfastrnn_cpu directly, with no Python: on random shapes (ragged lengths included) each
 * cell's float64 backward must match central finite differences of its forward, forward_infer
 * must equal forward, float32 must agree with float64, and bad arguments must return an error
 * code with a message. Built with AddressSanitizer and UBSan by tests/test_c_driver.py. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fastrnn_cells.h"  /* (the build's: kernels/abi.py) */

static int failures = 0;
#define EXPECT(cond, ...)                                  \
  do {                                                     \
    if (!(cond)) {                                         \
      failures++;                                          \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);                        \
      fprintf(stderr, "\n");                               \
    }                                                      \
  } while (0)

static double urand(void) { return 2.0 * rand() / RAND_MAX - 1.0; }
static double *rnd(int64_t n) {
  double *p = malloc((size_t)n * sizeof *p);
  for (int64_t i = 0; i < n; i++) p[i] = urand();
  return p;
}
static double *zeros(int64_t n) { return calloc((size_t)n, sizeof(double)); }
static float *to_f32(const double *p, int64_t n) {
  float *q = malloc((size_t)n * sizeof *q);
  for (int64_t i = 0; i < n; i++) q[i] = (float)p[i];
  return q;
}
static double dot(const double *a, const double *b, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
  return s;
}

enum { RNN_TANH, RNN_RELU, LSTM, GRU };
static const char *NAMES[] = {"rnn_tanh", "rnn_relu", "lstm", "gru"};
static const int GATES[] = {1, 1, 4, 3};

typedef struct {
  int cell;
  int64_t T, B, H, G;
  double *gx, *h0, *c0, *W, *b_hh, *wy, *wh, *wc; /* inputs and the loss weights */
  int64_t *lengths;
} Case;

/* L = Σ wy·y + Σ wh·h_n (+ Σ wc·c_n): one float64 forward (infer = 1: forward_infer). */
static double loss(const Case *c, int infer) {
  int64_t T = c->T, B = c->B, H = c->H, G = c->G, S = infer ? 2 : T + 1, Sg = infer ? 1 : T;
  double *y = zeros(T * B * H), *h_n = zeros(B * H), *c_n = zeros(B * H);
  double *hs = zeros(S * B * H), *cs = zeros(S * B * H), *gates = zeros(Sg * B * G),
         *a_n = zeros(Sg * B * H);
  int rc = 0;
  switch (c->cell) {
    case RNN_TANH:
      rc = (infer ? fastrnn_rnn_tanh_forward_infer_f64 : fastrnn_rnn_tanh_forward_f64)(
          T, B, H, c->gx, c->h0, c->W, c->lengths, y, h_n, hs);
      break;
    case RNN_RELU:
      rc = (infer ? fastrnn_rnn_relu_forward_infer_f64 : fastrnn_rnn_relu_forward_f64)(
          T, B, H, c->gx, c->h0, c->W, c->lengths, y, h_n, hs);
      break;
    case LSTM:
      rc = (infer ? fastrnn_lstm_forward_infer_f64 : fastrnn_lstm_forward_f64)(
          T, B, H, c->gx, c->h0, c->c0, c->W, c->lengths, y, h_n, c_n, gates, cs, hs);
      break;
    case GRU:
      rc = (infer ? fastrnn_gru_forward_infer_f64 : fastrnn_gru_forward_f64)(
          T, B, H, c->gx, c->h0, c->W, c->b_hh, c->lengths, y, h_n, gates, a_n, hs);
      break;
  }
  EXPECT(rc == 0, "%s forward: %s", NAMES[c->cell], fastrnn_last_error());
  double L = dot(y, c->wy, T * B * H) + dot(h_n, c->wh, B * H) + dot(c_n, c->wc, B * H);
  free(y), free(h_n), free(c_n), free(hs), free(cs), free(gates), free(a_n);
  return L;
}

/* ∂L/∂gx and ∂L/∂h0 (and ∂L/∂c0) from the backward kernel, after a saving forward. */
static void backward(const Case *c, double *dgx, double *dh0, double *dc0) {
  int64_t T = c->T, B = c->B, H = c->H, G = c->G;
  double *y = zeros(T * B * H), *h_n = zeros(B * H), *c_n = zeros(B * H);
  double *hs = zeros((T + 1) * B * H), *cs = zeros((T + 1) * B * H), *gates = zeros(T * B * G),
         *a_n = zeros(T * B * H), *dA = zeros(T * B * G);
  int rc = 0;
  if (c->cell <= RNN_RELU) {
    int relu = c->cell == RNN_RELU;
    (relu ? fastrnn_rnn_relu_forward_f64 : fastrnn_rnn_tanh_forward_f64)(
        T, B, H, c->gx, c->h0, c->W, c->lengths, y, h_n, hs);
    rc = (relu ? fastrnn_rnn_relu_backward_f64 : fastrnn_rnn_tanh_backward_f64)(
        T, B, H, c->wy, c->wh, hs, c->W, c->lengths, dgx, dh0);
  } else if (c->cell == LSTM) {
    fastrnn_lstm_forward_f64(T, B, H, c->gx, c->h0, c->c0, c->W, c->lengths, y, h_n, c_n, gates,
                             cs, hs);
    rc = fastrnn_lstm_backward_f64(T, B, H, c->wy, c->wh, c->wc, gates, cs, c->W, c->lengths, dgx,
                                   dh0, dc0);
  } else {
    fastrnn_gru_forward_f64(T, B, H, c->gx, c->h0, c->W, c->b_hh, c->lengths, y, h_n, gates, a_n,
                            hs);
    rc = fastrnn_gru_backward_f64(T, B, H, c->wy, c->wh, gates, a_n, hs, c->W, c->lengths, dgx,
                                  dA, dh0);
  }
  EXPECT(rc == 0, "%s backward: %s", NAMES[c->cell], fastrnn_last_error());
  free(y), free(h_n), free(c_n), free(hs), free(cs), free(gates), free(a_n), free(dA);
}

static void check_gradient(Case *c, double *x, const double *grad, int64_t n, const char *what) {
  const double eps = 1e-6;
  for (int k = 0; k < 6; k++) {
    int64_t i = rand() % n;
    double old = x[i];
    x[i] = old + eps;
    double up = loss(c, 0);
    x[i] = old - eps;
    double down = loss(c, 0);
    x[i] = old;
    double num = (up - down) / (2 * eps);
    EXPECT(fabs(num - grad[i]) <= 1e-6 * (1 + fabs(num)), "%s T=%lld B=%lld H=%lld d%s[%lld]: %g vs %g",
           NAMES[c->cell], (long long)c->T, (long long)c->B, (long long)c->H, what, (long long)i,
           grad[i], num);
  }
}

/* float32 forward agrees with float64 (the same pointwise math at the other precision). */
static void check_f32(const Case *c) {
  int64_t T = c->T, B = c->B, H = c->H, G = c->G;
  float *gx = to_f32(c->gx, T * B * G), *h0 = to_f32(c->h0, B * H), *c0 = to_f32(c->c0, B * H),
        *W = to_f32(c->W, G * H), *b = to_f32(c->b_hh, G);
  float *y = malloc(T * B * H * sizeof *y), *h_n = malloc(B * H * sizeof *h_n),
        *c_n = malloc(B * H * sizeof *c_n), *hs = malloc((T + 1) * B * H * sizeof *hs),
        *cs = malloc((T + 1) * B * H * sizeof *cs), *gates = malloc(T * B * G * sizeof *gates),
        *a_n = malloc(T * B * H * sizeof *a_n);
  double *y64 = zeros(T * B * H), *h64 = zeros(B * H), *c64 = zeros(B * H),
         *hs64 = zeros((T + 1) * B * H), *cs64 = zeros((T + 1) * B * H),
         *g64 = zeros(T * B * G), *an64 = zeros(T * B * H);
  switch (c->cell) {
    case RNN_TANH:
      fastrnn_rnn_tanh_forward_f32(T, B, H, gx, h0, W, c->lengths, y, h_n, hs);
      fastrnn_rnn_tanh_forward_f64(T, B, H, c->gx, c->h0, c->W, c->lengths, y64, h64, hs64);
      break;
    case RNN_RELU:
      fastrnn_rnn_relu_forward_f32(T, B, H, gx, h0, W, c->lengths, y, h_n, hs);
      fastrnn_rnn_relu_forward_f64(T, B, H, c->gx, c->h0, c->W, c->lengths, y64, h64, hs64);
      break;
    case LSTM:
      fastrnn_lstm_forward_f32(T, B, H, gx, h0, c0, W, c->lengths, y, h_n, c_n, gates, cs, hs);
      fastrnn_lstm_forward_f64(T, B, H, c->gx, c->h0, c->c0, c->W, c->lengths, y64, h64, c64, g64,
                               cs64, hs64);
      break;
    case GRU:
      fastrnn_gru_forward_f32(T, B, H, gx, h0, W, b, c->lengths, y, h_n, gates, a_n, hs);
      fastrnn_gru_forward_f64(T, B, H, c->gx, c->h0, c->W, c->b_hh, c->lengths, y64, h64, g64,
                              an64, hs64);
      break;
  }
  double worst = 0;
  for (int64_t i = 0; i < T * B * H; i++) worst = fmax(worst, fabs(y[i] - y64[i]));
  EXPECT(worst < 1e-4, "%s float32 differs from float64 by %g", NAMES[c->cell], worst);
  free(gx), free(h0), free(c0), free(W), free(b), free(y), free(h_n), free(c_n), free(hs);
  free(cs), free(gates), free(a_n), free(y64), free(h64), free(c64), free(hs64), free(cs64);
  free(g64), free(an64);
}

/* Random inputs and loss weights; ragged lengths, the first sequence full. */
static Case new_case(int cell, int64_t T, int64_t B, int64_t H) {
  int64_t G = GATES[cell] * H;
  Case c = {cell, T, B, H, G, rnd(T * B * G), rnd(B * H), rnd(B * H), rnd(G * H), rnd(G),
            rnd(T * B * H), rnd(B * H), rnd(B * H), malloc(B * sizeof(int64_t))};
  for (int64_t b = 0; b < B; b++) c.lengths[b] = b == 0 ? T : rand() % (T + 1);
  if (cell != LSTM) memset(c.wc, 0, B * H * sizeof(double)); /* no c_n outside the LSTM */
  return c;
}

static void free_case(Case *c) {
  free(c->gx), free(c->h0), free(c->c0), free(c->W), free(c->b_hh), free(c->wy), free(c->wh);
  free(c->wc), free(c->lengths);
}

static void run_case(int cell, int64_t T, int64_t B, int64_t H) {
  Case c = new_case(cell, T, B, H);
  double *dgx = zeros(T * B * c.G), *dh0 = zeros(B * H), *dc0 = zeros(B * H);
  backward(&c, dgx, dh0, dc0);
  check_gradient(&c, c.gx, dgx, T * B * c.G, "gx");
  check_gradient(&c, c.h0, dh0, B * H, "h0");
  if (cell == LSTM) check_gradient(&c, c.c0, dc0, B * H, "c0");
  EXPECT(loss(&c, 1) == loss(&c, 0), "%s forward_infer differs from forward", NAMES[cell]);
  check_f32(&c);
  free_case(&c), free(dgx), free(dh0), free(dc0);
}

/* Two threads split the hidden units of a step (B·G·H >= 2^17, H not a whole number of tiles):
 * forward, forward_infer and backward must give bitwise what one thread gives. */
static void check_threads(int cell, int64_t T, int64_t B, int64_t H) {
  Case c = new_case(cell, T, B, H);
  int64_t n = T * B * c.G + 2 * B * H;
  double *one = zeros(n), *two = zeros(n), L[2][2];
  for (int k = 0; k < 2; k++) {
    double *d = k ? two : one;
    fastrnn_set_num_threads(k + 1);
    backward(&c, d, d + T * B * c.G, d + T * B * c.G + B * H);
    L[k][0] = loss(&c, 0);
    L[k][1] = loss(&c, 1);
  }
  fastrnn_set_num_threads(1);
  EXPECT(memcmp(one, two, (size_t)n * sizeof(double)) == 0 && L[0][0] == L[1][0] &&
             L[0][1] == L[1][1],
         "%s T=%lld B=%lld H=%lld: two threads differ from one", NAMES[cell], (long long)T,
         (long long)B, (long long)H);
  free_case(&c), free(one), free(two);
}

/* The forwards with the input projection inside (forward_x, forward_x_infer) against the plain
 * forward on G_x = x W_ihᵀ + b_ih (+ b_hh: LSTM, RNN) computed here, in float64: several chunks
 * of steps, one and two threads, with and without biases. */
static void check_fused(int cell, int64_t T, int64_t B, int64_t I, int64_t H, int threads,
                        int bias) {
  Case c = new_case(cell, T, B, H);
  const int64_t G = c.G, S = T + 1;
  double *x = rnd(T * B * I), *W_ih = rnd(G * I), *b = bias ? rnd(G) : NULL;
  double *b2 = bias && cell != GRU ? rnd(G) : NULL;  /* GRU's b_hh belongs to A, not G_x */
  for (int64_t r = 0; r < T * B; r++)
    for (int64_t g = 0; g < G; g++)
      c.gx[r * G + g] = dot(x + r * I, W_ih + g * I, I) + ((b ? b[g] : 0) + (b2 ? b2[g] : 0));
  double *out[3][3];  /* forward, forward_x, forward_x_infer: y, h_n, c_n */
  fastrnn_set_num_threads(threads);
  for (int k = 0; k < 3; k++) {
    double *y = zeros(T * B * H), *h_n = zeros(B * H), *c_n = zeros(B * H);
    double *hs = zeros(S * B * H), *cs = zeros(S * B * H), *gates = zeros(T * B * G),
           *a_n = zeros(T * B * H);
    const int64_t *n = c.lengths;
    int rc = 0;
    if (cell == LSTM)
      rc = k == 0 ? fastrnn_lstm_forward_f64(T, B, H, c.gx, c.h0, c.c0, c.W, n, y, h_n, c_n, gates,
                                             cs, hs)
           : (k == 1 ? fastrnn_lstm_forward_x_f64 : fastrnn_lstm_forward_x_infer_f64)(
                 T, B, I, H, x, W_ih, b, b2, c.h0, c.c0, c.W, n, y, h_n, c_n, gates, cs, hs);
    else if (cell == GRU)
      rc = k == 0 ? fastrnn_gru_forward_f64(T, B, H, c.gx, c.h0, c.W, c.b_hh, n, y, h_n, gates,
                                            a_n, hs)
           : (k == 1 ? fastrnn_gru_forward_x_f64 : fastrnn_gru_forward_x_infer_f64)(
                 T, B, I, H, x, W_ih, b, c.h0, c.W, c.b_hh, n, y, h_n, gates, a_n, hs);
    else if (cell == RNN_TANH)
      rc = k == 0 ? fastrnn_rnn_tanh_forward_f64(T, B, H, c.gx, c.h0, c.W, n, y, h_n, hs)
           : (k == 1 ? fastrnn_rnn_tanh_forward_x_f64 : fastrnn_rnn_tanh_forward_x_infer_f64)(
                 T, B, I, H, x, W_ih, b, b2, c.h0, c.W, n, y, h_n, hs);
    else
      rc = k == 0 ? fastrnn_rnn_relu_forward_f64(T, B, H, c.gx, c.h0, c.W, n, y, h_n, hs)
           : (k == 1 ? fastrnn_rnn_relu_forward_x_f64 : fastrnn_rnn_relu_forward_x_infer_f64)(
                 T, B, I, H, x, W_ih, b, b2, c.h0, c.W, n, y, h_n, hs);
    EXPECT(rc == FASTRNN_OK, "%s fused k=%d: rc %d, %s", NAMES[cell], k, rc, fastrnn_last_error());
    out[k][0] = y, out[k][1] = h_n, out[k][2] = c_n;
    free(hs), free(cs), free(gates), free(a_n);
  }
  fastrnn_set_num_threads(1);
  const int64_t len[3] = {T * B * H, B * H, B * H};
  for (int k = 1; k < 3; k++)
    for (int o = 0; o < 3; o++) {
      double worst = 0;  /* relative above 1: a ReLU RNN's states grow, and G_x's sums start
                            from the bias there, a rounding apart from bias added after them */
      for (int64_t i = 0; i < len[o]; i++)
        worst = fmax(worst, fabs(out[k][o][i] - out[0][o][i]) / fmax(1, fabs(out[0][o][i])));
      EXPECT(worst < 1e-12, "%s T=%lld B=%lld I=%lld H=%lld threads=%d bias=%d: forward_x%s "
             "output %d differs from forward by %g", NAMES[cell], (long long)T, (long long)B,
             (long long)I, (long long)H, threads, bias, k == 2 ? "_infer" : "", o, worst);
    }
  for (int k = 0; k < 3; k++)
    for (int o = 0; o < 3; o++) free(out[k][o]);
  free(x), free(W_ih), free(b), free(b2), free_case(&c);
}

static void check_errors(void) {
  double buf[64] = {0};
  int64_t lengths[2] = {2, 3};
  int rc = fastrnn_lstm_forward_f64(2, 2, 2, buf, buf, buf, NULL, lengths, buf, buf, buf, buf, buf,
                                    buf);
  EXPECT(rc == FASTRNN_EINVAL && strstr(fastrnn_last_error(), "'W_hh' is NULL"),
         "NULL W_hh: rc %d, message '%s'", rc, fastrnn_last_error());
  rc = fastrnn_gru_forward_f32(2, 2, 2, (float *)buf, (float *)buf, (float *)buf, (float *)buf,
                               lengths, (float *)buf, (float *)buf, (float *)buf, (float *)buf,
                               (float *)buf);
  EXPECT(rc == FASTRNN_EINVAL && strstr(fastrnn_last_error(), "lengths[1] = 3"),
         "length past T: rc %d, message '%s'", rc, fastrnn_last_error());
  rc = fastrnn_rnn_tanh_forward_f64(0, 2, 2, buf, buf, buf, lengths, buf, buf, buf);
  EXPECT(rc == FASTRNN_EINVAL && strstr(fastrnn_last_error(), "T=0"), "T=0: rc %d, message '%s'",
         rc, fastrnn_last_error());
}

int main(void) {
  srand(7);
  const int64_t shapes[][3] = {{1, 1, 1}, {1, 3, 5}, {4, 1, 3}, {6, 5, 7}, {9, 4, 17}, {3, 6, 33}};
  for (int cell = 0; cell < 4; cell++)
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
      run_case(cell, shapes[s][0], shapes[s][1], shapes[s][2]);
  const int64_t wide[][3] = {{5, 8, 136}, {5, 8, 136}, {5, 8, 72}, {5, 8, 80}};
  for (int cell = 0; cell < 4; cell++) check_threads(cell, wide[cell][0], wide[cell][1], wide[cell][2]);
  const int64_t fused[][4] = {{70, 1, 5, 17}, {9, 8, 3, 40}, {5, 70, 6, 33}, {4, 8, 20, 136}};
  for (int cell = 0; cell < 4; cell++)
    for (size_t s = 0; s < sizeof fused / sizeof fused[0]; s++)
      for (int threads = 1; threads <= 2; threads++)
        check_fused(cell, fused[s][0], fused[s][1], fused[s][2], fused[s][3], threads,
                    (int)(s % 2));
  check_errors();
  printf("%s\n", failures ? "FAILED" : "all C kernel checks passed");
  return failures != 0;
}
