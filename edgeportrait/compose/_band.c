/* The compositor's band pass in C: the person's interior copied from the frame and the band
 * around the silhouette blended, I = αF + (1−α)B, one output row at a time.
 *
 * The OpenCV path it stands in for (edgeportrait/compose/blend.py, render_opencv) makes about a
 * hundred short OpenCV/numpy calls per 1080p frame with Python in between: the runs of interior
 * cells copied, the band's runs packed side by side, their coefficients upsampled, α computed,
 * blended and unpacked. Here it is one call, which ctypes makes with the GIL released, so the
 * photos of `process` compose side by side on the cores. 1080p, 2-core AVX2 EPYC: 2.8 ms against
 * 5.0 ms for the OpenCV path, background upsample (cv2.resize) included in both
 * (benchmarks/bench_compose_alternatives.py, 60 interleaved runs).
 *
 * Plain C99 and no Python headers: the wheel's build compiles it (hatch_build.py) with the C
 * compiler at hand and edgeportrait.compose.native loads it with ctypes; without a compiler the
 * OpenCV path runs, with the same look.
 *
 * The arithmetic follows OpenCV's where the result is visible, so the two paths differ by at most
 * one level (tests/test_compose_native.py):
 *   - the coefficients (a, b) upsampled as cv2.resize(INTER_LINEAR) places them: half-pixel
 *     centres, the edge cell repeated, in float;
 *   - luminance as cv2.cvtColor(BGR2GRAY) computes it, exactly (15-bit fixed point);
 *   - α = clamp(a·Y + b, 0, 1), blended in 8-bit fixed point, rounded to nearest.
 */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* what edgeportrait.compose.native checks before it calls: a build of another version is not used */
#define EP_BAND_ABI 1

/* x86-64: the loops that pay are built for AVX2 and for the baseline, and the loader picks the one
 * the CPU runs (function multiversioning); elsewhere (the Pi's NEON is its baseline) once */
#if defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define HOT __attribute__((target_clones("avx2", "default")))
#endif
#endif
#ifndef HOT
#define HOT
#endif

enum { CELL_BACKGROUND = 0, CELL_INTERIOR = 1, CELL_BAND = 2 };

int ep_band_abi(void) { return EP_BAND_ABI; }

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

/* A source row of the coefficients (float, 2 channels interleaved), interpolated across, as two
 * planes, for the output columns [xa, xb) only. */
static void coef_hrow(const float *src, int xa, int xb, const int *x0, const int *x1, const float *wx, float *a,
                      float *b) {
    for (int x = xa; x < xb; x++) {
        const float *p = src + 2 * x0[x], *q = src + 2 * x1[x];
        float w = wx[x];
        a[x] = p[0] + w * (q[0] - p[0]);
        b[x] = p[1] + w * (q[1] - p[1]);
    }
}

/* Luminance of n pixels, as cv2.cvtColor(BGR2GRAY) computes it for uint8 (15-bit fixed point; equal
 * for all 2^24 colours, checked against OpenCV 5.0), as float. */
static void band_luma(const uint8_t *f, int n, float *luma) {
    for (int x = 0; x < n; x++)
        luma[x] = (float)((f[3 * x] * 3735 + f[3 * x + 1] * 19235 + f[3 * x + 2] * 9798 + (1 << 14)) >> 15);
}

/* α of n pixels of a band run in 8-bit fixed point (0…256), from their luminance and the
 * coefficients mixed down from their two rows. */
HOT static void band_alpha(const float *luma, const float *a0, const float *a1, const float *b0, const float *b1,
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
HOT static void band_blend(const uint8_t *f, const uint16_t *alpha3, int n, uint8_t *out) {
    for (int i = 0; i < n; i++) {
        unsigned a = alpha3[i];
        out[i] = (uint8_t)((out[i] * (256u - a) + f[i] * a + 128u) >> 8);
    }
}

/* Writes the interior and the band of one frame into `out`, which holds the background B.
 *
 * frame:  H×W×3 uint8 (BGR), rows `fstride` bytes apart, pixels packed
 * out:    H×W×3 uint8, rows `ostride` bytes apart, pixels packed; B on entry, the portrait on return
 * coef:   lh×lw×2 float32, contiguous: per working cell the map (a, b) from luminance (0…255) to α
 * kind:   lh×lw uint8, contiguous: per working cell 0 (B: left as it is), 1 (F: copied), 2 (blended)
 * f:      the working factor: H == lh·f, W == lw·f
 *
 * Returns 0, or -1 when the sizes do not fit or memory runs out (then `out` is untouched).
 */
int ep_render_band(const uint8_t *frame, long fstride, uint8_t *out, long ostride, int H, int W, const float *coef,
                   const uint8_t *kind, int lh, int lw, int f) {
    if (H <= 0 || W <= 0 || f <= 0 || lh <= 0 || lw <= 0 || (long)lh * f != H || (long)lw * f != W ||
        fstride < 3L * W || ostride < 3L * W)
        return -1;
    int ok = 0;
    size_t n = (size_t)W + (size_t)H;
    int *ci = malloc(sizeof(int) * 2 * n);
    float *cwf = malloc(sizeof(float) * n);
    uint16_t *alpha = malloc(sizeof(uint16_t) * 4 * (size_t)W);
    float *crows = malloc(sizeof(float) * 5 * (size_t)W);
    /* per row of cells: the band's first and end cell (first > end: no band in the row); per row of
     * coefficients: the output columns its band pixels need, over the cell rows that read it */
    int *band_ext = malloc(sizeof(int) * 4 * (size_t)lh);
    /* per row of cells, its runs of interior or band cells: (kind, first cell, end cell)…, then -1 */
    size_t run_row = 3 * (size_t)lw + 1;
    int *runs = malloc(sizeof(int) * (size_t)lh * run_row);
    if (!ci || !cwf || !alpha || !crows || !band_ext || !runs)
        goto done;
    int *cx0 = ci, *cx1 = ci + W, *cy0 = ci + 2 * W, *cy1 = ci + 2 * W + H;
    float *cwx = cwf, *cwy = cwf + W;
    taps(W, lw, cx0, cx1, cwx);
    taps(H, lh, cy0, cy1, cwy);
    for (int r = 0; r < lh; r++) {
        const uint8_t *krow = kind + (size_t)r * lw;
        int *run = runs + (size_t)r * run_row;
        int *ext = band_ext + 2 * (size_t)r;
        ext[0] = lw;
        ext[1] = 0;
        for (int c = 0; c < lw;) {
            int k = krow[c], e = c + 1;
            while (e < lw && krow[e] == k)
                e++;
            if (k == CELL_BAND) {
                ext[0] = c < ext[0] ? c : ext[0];
                ext[1] = e;
            }
            if (k == CELL_INTERIOR || k == CELL_BAND) {
                *run++ = k;
                *run++ = c;
                *run++ = e;
            }
            c = e;
        }
        *run = -1;
    }
    /* output row y of cell row r mixes coefficient rows r-1, r or r+1 (half-pixel centres), so
     * coefficient row i is read by the band pixels of cell rows i-1, i and i+1 */
    int *coef_ext = band_ext + 2 * (size_t)lh;
    for (int i = 0; i < lh; i++) {
        int lo = lw, hi = 0;
        for (int r = i - 1; r <= i + 1; r++) {
            if (r < 0 || r >= lh)
                continue;
            lo = band_ext[2 * r] < lo ? band_ext[2 * r] : lo;
            hi = band_ext[2 * r + 1] > hi ? band_ext[2 * r + 1] : hi;
        }
        coef_ext[2 * i] = lo * f;
        coef_ext[2 * i + 1] = hi * f;
    }
    uint16_t *alpha3 = alpha + W;
    float *luma = crows + 4 * (size_t)W;
    /* the coefficients of the two cell rows an output row mixes, interpolated across (planes a, b);
     * rows are asked for in increasing order, so a miss replaces the slot not needed next */
    float *ca[2] = {crows, crows + 2 * (size_t)W}, *cb[2] = {crows + W, crows + 3 * (size_t)W};
    int have[2] = {-1, -1};

    for (int y = 0; y < H; y++) {
        int r = y / f;
        const int *run = runs + (size_t)r * run_row;
        if (*run < 0)
            continue;
        const uint8_t *fr = frame + (size_t)y * fstride;
        uint8_t *orow = out + (size_t)y * ostride;
        int slot[2] = {0, 0};
        if (band_ext[2 * r] < band_ext[2 * r + 1]) {
            int need[2] = {cy0[y], cy1[y]};
            for (int j = 0; j < 2; j++) {
                int k = have[0] == need[j] ? 0 : (have[1] == need[j] ? 1 : -1);
                if (k < 0) {
                    if (j == 1)
                        k = slot[0] == 0 ? 1 : 0;  /* keep the row just found for need[0] */
                    else
                        k = have[0] < have[1] ? 0 : 1;
                    const int *cx = coef_ext + 2 * (size_t)need[j];
                    coef_hrow(coef + (size_t)need[j] * lw * 2, cx[0], cx[1], cx0, cx1, cwx, ca[k], cb[k]);
                    have[k] = need[j];
                }
                slot[j] = k;
            }
        }
        float wy = cwy[y];
        for (; *run >= 0; run += 3) {
            int xa = run[1] * f, m = (run[2] - run[1]) * f;
            if (run[0] == CELL_INTERIOR) {
                memcpy(orow + 3 * (size_t)xa, fr + 3 * (size_t)xa, 3 * (size_t)m);
            } else {
                band_luma(fr + 3 * (size_t)xa, m, luma);
                band_alpha(luma, ca[slot[0]] + xa, ca[slot[1]] + xa, cb[slot[0]] + xa, cb[slot[1]] + xa, wy, m, alpha);
                for (int x = 0; x < m; x++)
                    alpha3[3 * x] = alpha3[3 * x + 1] = alpha3[3 * x + 2] = alpha[x];
                band_blend(fr + 3 * (size_t)xa, alpha3, 3 * m, orow + 3 * (size_t)xa);
            }
        }
    }
    ok = 1;
done:
    free(ci);
    free(cwf);
    free(alpha);
    free(crows);
    free(band_ext);
    free(runs);
    return ok ? 0 : -1;
}
