/* The compositor's full-resolution pass as one C function, to measure what compiled code would
 * gain (benchmarks/bench_compose_alternatives.py builds it with the machine's C compiler and loads
 * it with ctypes). It is not part of edgeportrait: see that script's docstring for why.
 *
 * What it stands for (edgeportrait/compose/blend.py and the end of background.masked_blur, the
 * OpenCV path) is about a hundred short OpenCV/numpy calls per 1080p frame with Python in between:
 * the low-resolution background upsampled to full size (cv2.resize), the person's interior copied
 * from the frame, and the band around the silhouette packed, its α computed from the upsampled
 * guided-filter coefficients, blended and unpacked. Here each output row is written once: the
 * background row mixed from two interpolated-across rows of the low-resolution background, then
 * the interior runs copied and the band runs blended, while the row is in cache.
 *
 * The arithmetic follows OpenCV's where the result is visible:
 *   - bilinear upsampling placed as cv2.resize(INTER_LINEAR) places it: half-pixel centres, the
 *     edge pixel repeated; the background in 8.8 fixed point, mixed down with 16-bit weights;
 *   - luminance as cv2.cvtColor(BGR2GRAY) computes it, exactly (14-bit fixed point);
 *   - α = clamp(a·Y + b, 0, 1) with (a, b) upsampled in float, then 8-bit fixed point for the blend.
 * The output is within 2 levels of the OpenCV path's (the script reports the largest difference).
 */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { CELL_BACKGROUND = 0, CELL_INTERIOR = 1, CELL_BAND = 2 };

/* For each destination index d of a resize from ssize to dsize: the two source taps and the
 * weight of the second, as cv2.resize INTER_LINEAR computes them. */
static void taps(int dsize, int ssize, int *i0, int *i1, float *w) {
    double scale = (double)ssize / (double)dsize;
    for (int d = 0; d < dsize; d++) {
        double fx = ((double)d + 0.5) * scale - 0.5;
        int sx = (int)floor(fx);
        fx -= sx;
        if (sx < 0) {
            sx = 0;
            fx = 0.0;
        }
        if (sx >= ssize - 1) {
            sx = ssize - 1;
            fx = 0.0;
        }
        i0[d] = sx;
        i1[d] = sx + 1 < ssize ? sx + 1 : sx;
        w[d] = (float)fx;
    }
}

/* A source row of the background (u8, 3 channels), interpolated across to the output width, in
 * 8-bit fixed point: value·256 (0…65280). */
static void bg_hrow(const uint8_t *src, int W, const int *x0, const int *x1, const uint16_t *w8, uint16_t *dst) {
    for (int x = 0; x < W; x++) {
        const uint8_t *p = src + 3 * x0[x], *q = src + 3 * x1[x];
        unsigned w = w8[x], v = 256 - w;
        dst[3 * x] = (uint16_t)(p[0] * v + q[0] * w);
        dst[3 * x + 1] = (uint16_t)(p[1] * v + q[1] * w);
        dst[3 * x + 2] = (uint16_t)(p[2] * v + q[2] * w);
    }
}

/* A source row of the coefficients (float, 2 channels interleaved), interpolated across, as two planes. */
static void coef_hrow(const float *src, int W, const int *x0, const int *x1, const float *wx, float *a, float *b) {
    for (int x = 0; x < W; x++) {
        const float *p = src + 2 * x0[x], *q = src + 2 * x1[x];
        float w = wx[x];
        a[x] = p[0] + w * (q[0] - p[0]);
        b[x] = p[1] + w * (q[1] - p[1]);
    }
}

/* One output row of the background: the two interpolated-across rows mixed with 16-bit weights
 * (w0 + w1 = 65536, w1 given; the high halves of the products, as pmulhuw computes them). */
static void bg_vrow(const uint16_t *h0, const uint16_t *h1, unsigned w1, int n, uint8_t *out) {
    uint16_t b = (uint16_t)(w1 > 65535 ? 65535 : w1);  /* w0 = 65536 − w1 held in 16 bits */
    uint16_t a = (uint16_t)(w1 == 0 ? 65535 : 65536 - w1);
    for (int i = 0; i < n; i++) {
        uint16_t v = (uint16_t)(((uint32_t)h0[i] * a) >> 16) + (uint16_t)(((uint32_t)h1[i] * b) >> 16);
        out[i] = (uint8_t)((v + 128u) >> 8);
    }
}

/* Luminance of n pixels, as cv2.cvtColor(BGR2GRAY) computes it (exactly), as float. */
static void band_luma(const uint8_t *f, int n, float *luma) {
    for (int x = 0; x < n; x++)
        luma[x] = (float)((f[3 * x] * 1868 + f[3 * x + 1] * 9617 + f[3 * x + 2] * 4899 + (1 << 13)) >> 14);
}

/* α of n pixels of a band run in 8-bit fixed point (0…256), each written three times (one per
 * channel), from the luminance and the coefficients mixed down from their two rows. */
static void band_alpha(const float *luma, const float *a0, const float *a1, const float *b0, const float *b1,
                           float wy, int n, uint16_t *alpha) {
    for (int x = 0; x < n; x++) {
        float a = a0[x] + wy * (a1[x] - a0[x]);
        float b = b0[x] + wy * (b1[x] - b0[x]);
        float q = a * luma[x] + b;
        q = q < 0.f ? 0.f : q;
        q = q > 1.f ? 1.f : q;
        alpha[x] = (uint16_t)(q * 256.f + 0.5f);
    }
}

/* out = (B·(256−α) + F·α + 128) / 256 over n bytes, α given per byte. */
static void band_blend(const uint8_t *f, const uint16_t *alpha3, int n, uint8_t *out) {
    for (int i = 0; i < n; i++) {
        unsigned a = alpha3[i];
        out[i] = (uint8_t)((out[i] * (256u - a) + f[i] * a + 128u) >> 8);
    }
}

/* Composes one frame.
 *
 * frame:  H×W×3 uint8 (BGR), rows `fstride` bytes apart
 * out:    H×W×3 uint8, rows `ostride` bytes apart; holds B already when `bg` is NULL
 * bg:     bh×bw×3 uint8, contiguous: the low-resolution background, upsampled into `out`; or NULL
 * coef:   lh×lw×2 float32, contiguous: per working cell the map (a, b) from luminance to α
 * kind:   lh×lw uint8, contiguous: per working cell 0 (B), 1 (F), 2 (blend)
 * f:      the working factor: H == lh·f, W == lw·f
 *
 * Returns 0, or -1 when the sizes do not fit or memory runs out (nothing is written then).
 */
int ep_compose(const uint8_t *frame, long fstride, uint8_t *out, long ostride, int H, int W, const uint8_t *bg,
               int bh, int bw, const float *coef, const uint8_t *kind, int lh, int lw, int f) {
    if (H <= 0 || W <= 0 || f <= 0 || lh * f != H || lw * f != W || (bg != NULL && (bh <= 0 || bw <= 0)))
        return -1;
    int ok = 0;
    size_t n = (size_t)W + (size_t)H;
    int *bi = malloc(sizeof(int) * 2 * n), *ci = malloc(sizeof(int) * 2 * n);
    float *bwf = malloc(sizeof(float) * n), *cwf = malloc(sizeof(float) * n);
    uint16_t *bw8 = malloc(sizeof(uint16_t) * (size_t)W);
    uint16_t *bgrows = malloc(sizeof(uint16_t) * 6 * (size_t)W), *alpha = malloc(sizeof(uint16_t) * 4 * (size_t)W);
    float *crows = malloc(sizeof(float) * 5 * (size_t)W);
    unsigned char *band_rows = malloc((size_t)lh);
    /* per row of cells, its runs of one kind: (kind, first cell, end cell), then -1 */
    int *runs = malloc(sizeof(int) * ((size_t)lh * (3 * (size_t)lw + 1)));
    if (!bi || !ci || !bwf || !cwf || !bw8 || !bgrows || !alpha || !crows || !band_rows || !runs)
        goto done;
    int *bx0 = bi, *bx1 = bi + W, *by0 = bi + 2 * W, *by1 = bi + 2 * W + H;
    int *cx0 = ci, *cx1 = ci + W, *cy0 = ci + 2 * W, *cy1 = ci + 2 * W + H;
    float *bwx = bwf, *bwy = bwf + W, *cwx = cwf, *cwy = cwf + W;
    if (bg != NULL) {
        taps(W, bw, bx0, bx1, bwx);
        taps(H, bh, by0, by1, bwy);
        for (int x = 0; x < W; x++)
            bw8[x] = (uint16_t)lrintf(bwx[x] * 256.f);
    }
    taps(W, lw, cx0, cx1, cwx);
    taps(H, lh, cy0, cy1, cwy);
    for (int r = 0; r < lh; r++) {
        const uint8_t *krow = kind + (size_t)r * lw;
        int *run = runs + (size_t)r * (3 * (size_t)lw + 1);
        band_rows[r] = 0;
        for (int c = 0; c < lw;) {
            int k = krow[c], e = c + 1;
            while (e < lw && krow[e] == k)
                e++;
            if (k == CELL_BAND)
                band_rows[r] = 1;
            if (k == CELL_INTERIOR || k == CELL_BAND) {
                *run++ = k;
                *run++ = c;
                *run++ = e;
            }
            c = e;
        }
        *run = -1;
    }
    uint16_t *alpha3 = alpha + W;
    float *luma = crows + 4 * (size_t)W;
    /* the two source rows interpolated across, for the background and for the coefficients; the
     * slot holding the lower row is the one replaced (rows are asked for in increasing order) */
    uint16_t *bgrow[2] = {bgrows, bgrows + 3 * (size_t)W};
    int bghave[2] = {-1, -1};
    float *ca[2] = {crows, crows + 2 * (size_t)W}, *cb[2] = {crows + W, crows + 3 * (size_t)W};
    int chave[2] = {-1, -1};

    for (int y = 0; y < H; y++) {
        const uint8_t *fr = frame + (size_t)y * fstride;
        uint8_t *orow = out + (size_t)y * ostride;
        if (bg != NULL) {
            int need[2] = {by0[y], by1[y]}, slot[2];
            for (int j = 0; j < 2; j++) {
                int k = bghave[0] == need[j] ? 0 : (bghave[1] == need[j] ? 1 : -1);
                if (k < 0) {
                    k = (j == 1 && bghave[0] == need[0]) ? 1 : (j == 1 && bghave[1] == need[0]) ? 0
                        : (bghave[0] < bghave[1] ? 0 : 1);
                    bg_hrow(bg + (size_t)need[j] * bw * 3, W, bx0, bx1, bw8, bgrow[k]);
                    bghave[k] = need[j];
                }
                slot[j] = k;
            }
            unsigned w1 = (unsigned)lrintf(bwy[y] * 65536.f);
            bg_vrow(bgrow[slot[0]], bgrow[slot[1]], w1, 3 * W, orow);
        }
        int r = y / f;
        int cs[2] = {0, 0};
        if (band_rows[r]) {
            int need[2] = {cy0[y], cy1[y]};
            for (int j = 0; j < 2; j++) {
                int k = chave[0] == need[j] ? 0 : (chave[1] == need[j] ? 1 : -1);
                if (k < 0) {
                    k = (j == 1 && chave[0] == need[0]) ? 1 : (j == 1 && chave[1] == need[0]) ? 0
                        : (chave[0] < chave[1] ? 0 : 1);
                    coef_hrow(coef + (size_t)need[j] * lw * 2, W, cx0, cx1, cwx, ca[k], cb[k]);
                    chave[k] = need[j];
                }
                cs[j] = k;
            }
        }
        float wy = cwy[y];
        for (const int *run = runs + (size_t)r * (3 * (size_t)lw + 1); *run >= 0; run += 3) {
            int k = run[0], xa = run[1] * f, xb = run[2] * f, m = xb - xa;
            if (k == CELL_INTERIOR) {
                memcpy(orow + 3 * (size_t)xa, fr + 3 * (size_t)xa, 3 * (size_t)m);
            } else if (k == CELL_BAND) {
                band_luma(fr + 3 * xa, m, luma);
                band_alpha(luma, ca[cs[0]] + xa, ca[cs[1]] + xa, cb[cs[0]] + xa, cb[cs[1]] + xa, wy, m, alpha);
                for (int x = 0; x < m; x++)
                    alpha3[3 * x] = alpha3[3 * x + 1] = alpha3[3 * x + 2] = alpha[x];
                band_blend(fr + 3 * xa, alpha3, 3 * m, orow + 3 * xa);
            }
        }
    }
    ok = 1;
done:
    free(bi);
    free(ci);
    free(bwf);
    free(cwf);
    free(bw8);
    free(bgrows);
    free(alpha);
    free(crows);
    free(band_rows);
    free(runs);
    return ok ? 0 : -1;
}
