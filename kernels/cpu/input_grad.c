/* ∂L/∂x = ∂L/∂G_x W_ih over all T·B rows at once: the backward's input gradient, on the same
 * register tiles as the recurrent products. Compiled once per element type and CPU variant.
 * fastrnn.dispatch says where it runs instead of the framework's BLAS. */
#include "internal.h"

/* Thread p of P: its units [i0, i1) of I, packed and multiplied for all M rows. */
static void input_grad_part(int p, int P, int64_t M, int64_t G, int64_t I, const real *dG,
                            const fr_weights *w, real *dx) {
  int64_t i0, i1;
  fr_slice(I, p, P, &i0, &i1);
  fr_weights_pack(w, i0, i1);
  if (i0 < i1) fr_backward_product(w, M, dG, dx, i0, i1, 0);
}

int SFXV(fastrnn_input_grad)(int64_t T, int64_t B, int64_t I, int64_t G, const real *dG,
                            const real *W_ih, real *dx) {
  FR_CHECK(e, T, B, G, 1, NULL, 0, dG, W_ih, dx);
  if (e) return e;
  if (I < 1) return fr_fail(__func__, "expected I >= 1, got I=%lld", (long long)I);
  const int64_t M = T * B;
  fr_weights w;  /* W_ih [G,I] in the backward's layout: its I columns are the outputs */
  if (fr_weights_init(&w, 1, M, M, G, I, W_ih, NULL, 1))
    return fr_nomem(__func__, "W_ih's workspace");
  const int P = fr_team(1, M, G, I, 1);
  FR_PARALLEL(input_grad_part(fr_thread(), fr_team_size(), M, G, I, dG, &w, dx));
  fr_weights_free(&w);
  return FASTRNN_OK;
}
