/* The compositor's C library: the passes of a compose that touch many pixels, each one call that
 * ctypes makes with the GIL released, each sharing the rows between `threads` threads (run_split):
 *
 *   - ep_downscale: the frame to the working resolution, several INTER_AREA halvings in one pass,
 *     equal to OpenCV's (matte.py, downscale);
 *   - ep_low_matte: the guided filter at the working resolution and the cells' kinds (interior,
 *     band, background), streamed through rings of rows (matte.py: guided_coefficients,
 *     cell_kinds);
 *   - ep_masked_blur: the mask-normalised blur at the blur's resolution (background.py,
 *     masked_blur_low);
 *   - ep_upsample: that blur back to full resolution, equal to cv2.resize INTER_LINEAR
 *     (background.py, upscale);
 *   - ep_render_band, the band pass: the person's interior copied from the frame and the band
 *     around the silhouette blended, I = αF + (1−α)B, one output row at a time. Its OpenCV path
 *     (edgeportrait/compose/blend.py, render_opencv) is about a hundred short OpenCV/numpy calls
 *     per 1080p frame with Python in between.
 *
 * 1080p compose on a 2-core AVX2 EPYC, the OpenCV path against this (bench_compose.py --baseline
 * 8805fdc, 150 interleaved runs, medians, a slow hour: the naive compositor took 121-184 ms):
 * 10.6 -> 4.2 ms on both cores, 12.5 -> 5.9 ms on one.
 *
 * Plain C99 and no Python headers: the wheel's build compiles it (hatch_build.py) with the C
 * compiler at hand and edgeportrait.compose.native loads it with ctypes; without a compiler the
 * OpenCV path runs, with the same look.
 *
 * The arithmetic follows OpenCV's where the result is visible, so the two paths differ by at most
 * one level, the downscale and the upsample not at all (tests/test_compose_native.py); the threads'
 * split changes no byte:
 *   - the coefficients (a, b) upsampled as cv2.resize(INTER_LINEAR) places them: half-pixel
 *     centres, the edge cell repeated, in float;
 *   - luminance as cv2.cvtColor(BGR2GRAY) computes it, exactly (15-bit fixed point);
 *   - α = clamp(a·Y + b, 0, 1), blended in 8-bit fixed point, rounded to nearest;
 *   - box and Gaussian windows with BORDER_REFLECT, summed in float (OpenCV's box filter sums in
 *     double: the coefficients agree to ~1e-4, which moves no 8-bit level).
 */

#define _POSIX_C_SOURCE 200809L /* pthread_sigmask, sigfillset under -std=c99 */

#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* what edgeportrait.compose.native checks before it calls: a build of another version is not used */
#define EP_BAND_ABI 5

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

/* coefficient columns fewer than this many cells apart are interpolated as one run (a run's call
 * costs about what interpolating a few cells does) */
enum { COEF_GAP = 8 };

int ep_band_abi(void) { return EP_BAND_ABI; }

/* For each destination index d of a resize from ssize to dsize: the two source taps and the
 * weight of the second, as cv2.resize INTER_LINEAR places them along a column: positions in float,
 * the taps clamped to the edge and the weight kept (both taps are then the edge row, so a float
 * mix is that row; OpenCV's 8-bit rounding of the two products still sees the weight). */
static void taps(int dsize, int ssize, int *i0, int *i1, float *w) {
    double scale = 1.0 / ((double)dsize / (double)ssize);
    for (int d = 0; d < dsize; d++) {
        float fx = (float)((d + 0.5) * scale - 0.5);
        int sx = (int)floorf(fx);
        fx -= (float)sx;
        i0[d] = sx < 0 ? 0 : (sx > ssize - 1 ? ssize - 1 : sx);
        i1[d] = sx + 1 < 0 ? 0 : (sx + 1 > ssize - 1 ? ssize - 1 : sx + 1);
        w[d] = fx;
    }
}

/* A source row of the coefficients (float, 2 channels interleaved) interpolated across to the cells
 * [c0, c1), as two planes indexed by output column. The output is exactly f times wider (f a power
 * of two), so cv2.resize's taps repeat with each cell: column c·f + k mixes cells c−1 and c for
 * k < f/2 and c and c+1 for the rest, with the weight wk[k] of the second; the edge cell repeated. */
HOT static void coef_hrow(const float *src, int lw, int f, int c0, int c1, const float *wk, float *restrict a,
                          float *restrict b) {
    if (f == 1) {
        for (int c = c0; c < c1; c++) {
            a[c] = src[2 * c];
            b[c] = src[2 * c + 1];
        }
        return;
    }
    int h = f / 2;
    for (int c = c0; c < c1; c++) {
        const float *l = src + 2 * (c > 0 ? c - 1 : 0), *m = src + 2 * c, *r = src + 2 * (c < lw - 1 ? c + 1 : lw - 1);
        float *ao = a + (size_t)c * f, *bo = b + (size_t)c * f;
        for (int k = 0; k < h; k++) {
            ao[k] = l[0] + wk[k] * (m[0] - l[0]);
            bo[k] = l[1] + wk[k] * (m[1] - l[1]);
        }
        for (int k = h; k < f; k++) {
            ao[k] = m[0] + wk[k] * (r[0] - m[0]);
            bo[k] = m[1] + wk[k] * (r[1] - m[1]);
        }
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

/* A job's first member: the rows [y0, y1) a worker does, and whether it managed (its scratch). */
struct rows {
    int y0, y1, ok;
};

#define EP_MAX_THREADS 8
union job_slot {
    struct rows part;
    void *align_p;
    double align_d;
    unsigned char raw[256];
};

/* The worker threads the passes share, started on first need and kept: starting and joining a
 * thread per call cost ~0.1 ms here, a third of a 720p band pass. One call uses them at a time
 * (pool_use); a call that finds them busy runs its parts on its own thread. Each batch is a work
 * function and its job slots; workers and the caller take slots until none is left. */
static pthread_mutex_t pool_use = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pool_wake = PTHREAD_COND_INITIALIZER, pool_done = PTHREAD_COND_INITIALIZER;
static int pool_size;                  /* workers started */
static void *(*pool_fn)(void *);       /* the batch: its work, its slots, */
static union job_slot *pool_jobs;      /* the next slot to take, the slots in it, */
static int pool_next, pool_count, pool_left; /* the slots not finished yet */
static pthread_once_t pool_fork_once = PTHREAD_ONCE_INIT;

static void pool_take(void) { /* called and returns with pool_lock held */
    while (pool_next < pool_count) {
        int i = pool_next++;
        void *(*fn)(void *) = pool_fn;
        union job_slot *job = &pool_jobs[i];
        pthread_mutex_unlock(&pool_lock);
        fn(job);
        pthread_mutex_lock(&pool_lock);
        if (--pool_left == 0)
            pthread_cond_broadcast(&pool_done);
    }
}

static void *pool_worker(void *arg) {
    (void)arg;
    pthread_mutex_lock(&pool_lock);
    for (;;) {
        while (pool_next >= pool_count)
            pthread_cond_wait(&pool_wake, &pool_lock);
        pool_take();
    }
    return NULL;
}

/* a forked child has none of the parent's threads: it starts its own when it needs them */
static void pool_forked(void) {
    pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t c = PTHREAD_COND_INITIALIZER;
    pool_use = m;
    pool_lock = m;
    pool_wake = c;
    pool_done = c;
    pool_size = 0;
    pool_next = pool_count = pool_left = 0;
}

static void pool_register_fork(void) { pthread_atfork(NULL, NULL, pool_forked); }

/* Makes sure `want` workers run (called with pool_lock held); returns how many do. They block
 * every signal: those are for the threads the process made (Python's main thread). */
static int pool_grow(int want) {
    pthread_once(&pool_fork_once, pool_register_fork);
    if (pool_size >= want)
        return pool_size;
    pthread_attr_t attr;
    sigset_t all, old;
    if (pthread_attr_init(&attr) != 0)
        return pool_size;
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    while (pool_size < want) {
        pthread_t tid;
        if (pthread_create(&tid, &attr, pool_worker, NULL) != 0)
            break;
        pool_size++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    return pool_size;
}

/* Runs `work` over rows [0, H) split into `threads` contiguous parts, each on a copy of the job
 * `base` (`size` bytes, a struct rows first): the last part on the calling thread, the others on
 * the pool's workers (or on the calling thread too, when the pool is busy or cannot grow).
 * Returns 1 when every part reported ok. */
static int run_split(void *(*work)(void *), const void *base, size_t size, int H, int threads) {
    union job_slot jobs[EP_MAX_THREADS];
    if (size > sizeof jobs[0].raw)
        return 0;
    threads = threads < 1 ? 1 : (threads > EP_MAX_THREADS ? EP_MAX_THREADS : threads);
    threads = threads > H ? H : threads;
    for (int t = 0; t < threads; t++) {
        memcpy(jobs[t].raw, base, size);
        jobs[t].part.y0 = (int)((long)H * t / threads);
        jobs[t].part.y1 = (int)((long)H * (t + 1) / threads);
        jobs[t].part.ok = 0;
    }
    if (threads > 1 && pthread_mutex_trylock(&pool_use) == 0) {
        pthread_mutex_lock(&pool_lock);
        pool_grow(threads - 1);
        pool_fn = work;
        pool_jobs = jobs;
        pool_next = 0;
        pool_count = pool_left = threads - 1;
        pthread_cond_broadcast(&pool_wake);
        pthread_mutex_unlock(&pool_lock);
        work(&jobs[threads - 1]);
        pthread_mutex_lock(&pool_lock);
        pool_take(); /* the slots no worker took yet (none may be running) */
        while (pool_left > 0)
            pthread_cond_wait(&pool_done, &pool_lock);
        pool_next = pool_count = 0;
        pthread_mutex_unlock(&pool_lock);
        pthread_mutex_unlock(&pool_use);
    } else {
        for (int t = 0; t < threads; t++)
            work(&jobs[t]);
    }
    int ok = 1;
    for (int t = 0; t < threads; t++)
        ok &= jobs[t].part.ok;
    return ok;
}

/* For an output row that mixes two source rows need[0] and need[1], interpolated across into two
 * slots: which slot holds each (at[q]) and whether it must be made first (miss[q]); `have` says
 * which row each slot holds and is updated. Rows are asked for in increasing order, so a miss
 * replaces the slot not needed now (for need[1], not the one just found for need[0]). */
static void pick_rows(const int need[2], int have[2], int at[2], int miss[2]) {
    for (int q = 0; q < 2; q++) {
        int k = have[0] == need[q] ? 0 : (have[1] == need[q] ? 1 : -1);
        miss[q] = k < 0;
        if (k < 0) {
            k = q == 1 ? 1 - at[0] : (have[0] < have[1] ? 0 : 1);
            have[k] = need[q];
        }
        at[q] = k;
    }
}

/* What the rows of one frame share: the frame, the output, the coefficients' taps and the runs. */
struct band_job {
    struct rows part; /* first: see run_split */
    const uint8_t *frame;
    uint8_t *out;
    long fstride, ostride;
    int W, f, lw;
    const float *coef;
    const float *wk; /* across: the second tap's weight per column of a cell (see coef_hrow) */
    const int *cy0, *cy1;
    const float *cwy;
    const int *runs, *band_ext, *coef_runs; /* coef_runs: see ep_render_band */
    size_t run_row;
};

/* The rows [y0, y1) of a job, with scratch of its own (the coefficient rows it interpolated last). */
HOT static void *band_rows(void *arg) {
    struct band_job *j = arg;
    int W = j->W, f = j->f;
    uint16_t *alpha = malloc(sizeof(uint16_t) * 4 * (size_t)W);
    float *crows = malloc(sizeof(float) * 5 * (size_t)W);
    if (!alpha || !crows) {
        free(alpha);
        free(crows);
        j->part.ok = 0;
        return NULL;
    }
    uint16_t *alpha3 = alpha + W;
    float *luma = crows + 4 * (size_t)W;
    /* the coefficients of the two cell rows an output row mixes, interpolated across (planes a, b;
     * see pick_rows) */
    float *ca[2] = {crows, crows + 2 * (size_t)W}, *cb[2] = {crows + W, crows + 3 * (size_t)W};
    int have[2] = {-1, -1};

    for (int y = j->part.y0; y < j->part.y1; y++) {
        int r = y / f;
        const int *run = j->runs + (size_t)r * j->run_row;
        if (*run < 0)
            continue;
        const uint8_t *fr = j->frame + (size_t)y * j->fstride;
        uint8_t *orow = j->out + (size_t)y * j->ostride;
        int slot[2] = {0, 0};
        if (j->band_ext[2 * r] < j->band_ext[2 * r + 1]) {
            int need[2] = {j->cy0[y], j->cy1[y]}, miss[2];
            pick_rows(need, have, slot, miss);
            for (int q = 0; q < 2; q++) {
                if (!miss[q])
                    continue;
                const float *src = j->coef + (size_t)need[q] * j->lw * 2;
                for (const int *cr = j->coef_runs + (size_t)need[q] * (j->lw + 2); *cr >= 0; cr += 2)
                    coef_hrow(src, j->lw, f, cr[0], cr[1], j->wk, ca[slot[q]], cb[slot[q]]);
            }
        }
        float wy = j->cwy[y];
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
    free(alpha);
    free(crows);
    j->part.ok = 1;
    return NULL;
}

/* The first index in [i, n) whose byte is not v, or n: eight bytes at a time (the cells' rows are
 * long runs of one kind; scanning them a byte at a time was a seventh of the band pass). */
static int next_other(const uint8_t *p, int i, int n, uint8_t v) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t pattern = 0x0101010101010101ull * v;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        w ^= pattern;
        if (w)
            return i + (__builtin_ctzll(w) >> 3); /* the lowest differing byte is the first */
    }
#endif
    while (i < n && p[i] == v)
        i++;
    return i;
}

/* Writes the interior and the band of one frame into `out`, which holds the background B.
 *
 * frame:  H×W×3 uint8 (BGR), rows `fstride` bytes apart, pixels packed
 * out:    H×W×3 uint8, rows `ostride` bytes apart, pixels packed; B on entry, the portrait on return
 * coef:   lh×lw×2 float32, contiguous: per working cell the map (a, b) from luminance (0…255) to α
 * kind:   lh×lw uint8, contiguous: per working cell 0 (B: left as it is), 1 (F: copied), 2 (blended)
 * f:      the working factor, a power of two: H == lh·f, W == lw·f
 * threads: how many threads share the rows (1: the caller's alone; at most EP_MAX_THREADS)
 *
 * Returns 0, or -1 when the sizes do not fit or memory runs out (then `out` may be partly written
 * only if a worker's scratch could not be had; the sizes are checked before anything is).
 */
int ep_render_band(const uint8_t *frame, long fstride, uint8_t *out, long ostride, int H, int W, const float *coef,
                   const uint8_t *kind, int lh, int lw, int f, int threads) {
    if (H <= 0 || W <= 0 || f <= 0 || (f & (f - 1)) || lh <= 0 || lw <= 0 || (long)lh * f != H ||
        (long)lw * f != W || fstride < 3L * W || ostride < 3L * W)
        return -1;
    int ok = 0;
    int *ci = malloc(sizeof(int) * 2 * (size_t)H);
    float *cwf = malloc(sizeof(float) * ((size_t)H + (size_t)f));
    /* per row of cells: the band's first and end cell (first > end: no band in the row) */
    int *band_ext = malloc(sizeof(int) * 2 * (size_t)lh);
    /* per row of coefficients: the runs of cells whose columns band pixels read, (first, end)…, -1 */
    int *coef_runs = malloc(sizeof(int) * (size_t)lh * ((size_t)lw + 2));
    uint8_t *needed = malloc((size_t)lw);
    /* per row of cells, its runs of interior or band cells: (kind, first cell, end cell)…, then -1 */
    size_t run_row = 3 * (size_t)lw + 1;
    int *runs = malloc(sizeof(int) * (size_t)lh * run_row);
    if (!ci || !cwf || !band_ext || !coef_runs || !needed || !runs)
        goto done;
    int *cy0 = ci, *cy1 = ci + H;
    float *cwy = cwf, *wk = cwf + H;
    taps(H, lh, cy0, cy1, cwy);
    for (int k = 0; k < f; k++) /* the position of column c·f + k between its two cells' centres */
        wk[k] = (float)(((double)k + 0.5) / f - 0.5 + (2 * k < f ? 1.0 : 0.0));
    for (int r = 0; r < lh; r++) {
        const uint8_t *krow = kind + (size_t)r * lw;
        int *run = runs + (size_t)r * run_row;
        int *ext = band_ext + 2 * (size_t)r;
        ext[0] = lw;
        ext[1] = 0;
        for (int c = 0; c < lw;) {
            int k = krow[c], e = next_other(krow, c + 1, lw, (uint8_t)k);
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
     * coefficient row i is read by the band cells of cell rows i-1, i and i+1, at their own columns
     * (a band cell's pixels mix its neighbours' coefficients too, but coef_hrow fetches those itself) */
    for (int i = 0; i < lh; i++) {
        memset(needed, 0, (size_t)lw);
        for (int r = i - 1; r <= i + 1; r++) {
            if (r < 0 || r >= lh)
                continue;
            const uint8_t *krow = kind + (size_t)r * lw;
            for (int c = band_ext[2 * r]; c < band_ext[2 * r + 1]; c++)
                needed[c] |= krow[c] == CELL_BAND;
        }
        int *cr = coef_runs + (size_t)i * ((size_t)lw + 2);
        for (int c = next_other(needed, 0, lw, 0); c < lw; c = next_other(needed, c, lw, 0)) {
            int e = c; /* runs fewer than COEF_GAP cells apart are done as one */
            for (;;) {
                e = next_other(needed, e, lw, 1);
                int z = next_other(needed, e, lw, 0);
                if (z >= lw || z - e >= COEF_GAP)
                    break;
                e = z;
            }
            *cr++ = c;
            *cr++ = e;
            c = e;
        }
        *cr = -1;
    }
    struct band_job base = {{0, H, 0}, frame, out, fstride, ostride, W, f, lw, coef, wk, cy0, cy1, cwy,
                            runs, band_ext, coef_runs, run_row};
    ok = run_split(band_rows, &base, sizeof base, H, threads);
done:
    free(ci);
    free(cwf);
    free(band_ext);
    free(coef_runs);
    free(needed);
    free(runs);
    return ok ? 0 : -1;
}

/* ---------------------------------------------------------------------------------------------
 * The blurred background's upsample to full resolution, as cv2.resize(INTER_LINEAR) computes it
 * for 8-bit images, for a whole power-of-two factor across. OpenCV interpolates each source row
 * across into 32-bit sums (11-bit weights) and mixes two such rows down, keeping the high halves
 * of 16-bit products. For a factor of 2 to 16 the sums across are 2048 × a multiple of 1/32, so
 * the same values fit 16 bits (in 128ths of a level) and every step runs on 16-bit lanes: 16
 * values per AVX2 (8 per NEON or SSE2) instruction where OpenCV's row pass works on 32-bit ones.
 * Byte for byte cv2.resize's result (tests/test_compose_native.py: noise, odd widths, any height).
 * 1080p from 1/8, AVX2 EPYC, same run, medians: 0.95 against 2.02 ms on one core, 0.56 against
 * 1.06 on two.
 * --------------------------------------------------------------------------------------------- */

/* The source row's pixels each repeated f times, with f copies of its edge pixels before and after:
 * (sw + 2)·f·3 bytes and one spare, as each pixel is stored as 4 bytes overlapping the next. */
static void repeat_row(const uint8_t *s, int sw, int f, uint8_t *rep) {
    uint8_t *o = rep;
    for (int c = -1; c <= sw; c++) {
        const uint8_t *p = s + 3 * (c < 0 ? 0 : (c >= sw ? sw - 1 : c));
        uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16;
        for (int k = 0; k < f; k++, o += 3)
            memcpy(o, &v, 4);
    }
}

/* A row interpolated across, in 128ths of a level (0…32640): copy k of pixel c (value j of the
 * repeated row `m`) lies (2k + 1 − f)/2f of the way towards the pixel after (k >= f/2, cr[j]) or
 * before (k < f/2, cl[j]), the coefficients in 128ths; the edge pixels' copies make cv2's clamp
 * (the weight on a tap outside the row goes to the edge pixel). The sum fits 16 bits although its
 * parts need not: the wrapping casts let the compiler use 16-bit lanes. */
HOT static void up_hrow(const uint8_t *restrict m, const int16_t *restrict cl, const int16_t *restrict cr, int n,
                        int s3f, uint16_t *restrict h) {
    for (int j = 0; j < n; j++) {
        int16_t c = (int16_t)m[j], l = (int16_t)m[j - s3f], r = (int16_t)m[j + s3f];
        h[j] = (uint16_t)(128 * c + cl[j] * (c - l) + cr[j] * (r - c));
    }
}

/* An output row mixed down from two rows across with the weights b0, b1 (of 2048), as OpenCV's
 * vectorised rows do: ((h0·b0) >> 16) + ((h1·b1) >> 16), then (+2) >> 2 (h0, h1 in 128ths). */
HOT static void up_vrow(const uint16_t *restrict h0, const uint16_t *restrict h1, uint16_t b0, uint16_t b1, int n,
                        uint8_t *restrict out) {
    for (int i = 0; i < n; i++) {
        uint16_t t0 = (uint16_t)(((uint32_t)h0[i] * b0) >> 16), t1 = (uint16_t)(((uint32_t)h1[i] * b1) >> 16);
        out[i] = (uint8_t)((uint16_t)(t0 + t1 + 2u) >> 2);
    }
}

struct up_job {
    struct rows part; /* first: see run_split */
    const uint8_t *src;
    long sstride;
    int sw, f;
    uint8_t *dst;
    long dstride;
    const int16_t *cl, *cr;
    const int *y0, *y1;
    const uint16_t *b0, *b1;
};

static void *up_rows(void *arg) {
    struct up_job *j = arg;
    int f = j->f, n = j->sw * f * 3, s3f = 3 * f;
    uint8_t *rep = malloc((size_t)(j->sw + 2) * s3f + 1);
    uint16_t *hrows = malloc(sizeof(uint16_t) * 2 * (size_t)n);
    if (!rep || !hrows) {
        free(rep);
        free(hrows);
        j->part.ok = 0;
        return NULL;
    }
    uint16_t *slot[2] = {hrows, hrows + n};
    int have[2] = {-1, -1};
    for (int y = j->part.y0; y < j->part.y1; y++) {
        int need[2] = {j->y0[y], j->y1[y]}, at[2], miss[2];
        pick_rows(need, have, at, miss);
        for (int q = 0; q < 2; q++)
            if (miss[q]) {
                repeat_row(j->src + (size_t)need[q] * j->sstride, j->sw, f, rep);
                up_hrow(rep + s3f, j->cl, j->cr, n, s3f, slot[at[q]]);
            }
        up_vrow(slot[at[0]], slot[at[1]], j->b0[y], j->b1[y], n, j->dst + (size_t)y * j->dstride);
    }
    free(rep);
    free(hrows);
    j->part.ok = 1;
    return NULL;
}

/* cv2.resize(src, (sw·f, dh), interpolation=INTER_LINEAR) into dst, for f = 2, 4, 8 or 16.
 *
 * src:     sh×sw×3 uint8 (BGR), rows `sstride` bytes apart
 * dst:     dh×(sw·f)×3 uint8, rows `dstride` bytes apart; any dh >= 1
 * threads: how many threads share the output rows
 * Returns 0, or -1 for sizes that do not fit or when memory runs out.
 */
int ep_upsample(const uint8_t *src, long sstride, int sh, int sw, uint8_t *dst, long dstride, int dh, int f,
                int threads) {
    if (sh <= 0 || sw <= 0 || dh <= 0 || (f != 2 && f != 4 && f != 8 && f != 16) || sstride < 3L * sw ||
        dstride < 3L * sw * f)
        return -1;
    int n = sw * f * 3, ok = 0;
    int16_t *coefs = malloc(sizeof(int16_t) * 2 * (size_t)n);
    int *yi = malloc(sizeof(int) * 2 * (size_t)dh);
    float *wy = malloc(sizeof(float) * (size_t)dh);
    uint16_t *bw = malloc(sizeof(uint16_t) * 2 * (size_t)dh);
    if (!coefs || !yi || !wy || !bw)
        goto done;
    int16_t *cl = coefs, *cr = coefs + n;
    for (int j = 0; j < n; j++) {
        int k = (j / 3) % f, c = (64 / f) * (2 * k + 1 - f);
        cl[j] = (int16_t)(2 * k < f ? c : 0);
        cr[j] = (int16_t)(2 * k < f ? 0 : c);
    }
    taps(dh, sh, yi, yi + dh, wy);
    for (int y = 0; y < dh; y++) { /* OpenCV's 11-bit weights */
        bw[y] = (uint16_t)lrintf((1.0f - wy[y]) * 2048.0f);
        bw[dh + y] = (uint16_t)lrintf(wy[y] * 2048.0f);
    }
    struct up_job base = {{0, dh, 0}, src, sstride, sw, f, dst, dstride, cl, cr, yi, yi + dh, bw, bw + dh};
    ok = run_split(up_rows, &base, sizeof base, dh, threads);
done:
    free(coefs);
    free(yi);
    free(wy);
    free(bw);
    return ok ? 0 : -1;
}

/* ---------------------------------------------------------------------------------------------
 * The frame's downscale to the working resolution: halved `levels` times, each halving as
 * cv2.resize(INTER_AREA) halves an 8-bit image, (a + b + c + d + 2) >> 2, so equal to it. OpenCV
 * halves once per call, writing and reading each intermediate image; here an output row is made
 * from its 2^levels frame rows in one go, every sum over a whole row in 16-bit lanes (a level's
 * pixels stay where the frame's first pixel of each group was, so no step shuffles them), and the
 * result is gathered once at the end. 1080p to 1/4, same machine and run: 0.60 against 0.84 ms on
 * one core; 0.45 both on two, where reading the frame is the limit.
 * --------------------------------------------------------------------------------------------- */

/* The first halving of two frame rows: h[i] = (a[i] + b[i] + a[i+3] + b[i+3] + 2) >> 2 for
 * i < n − 3 (meaningful where i mod 6 < 3). */
HOT static void down_first(const uint8_t *restrict a, const uint8_t *restrict b, int n, uint16_t *restrict h) {
    for (int i = 0; i + 3 < n; i++)
        h[i] = (uint16_t)((uint16_t)(a[i] + b[i] + a[i + 3] + b[i + 3] + 2) >> 2);
}

/* A further halving of two rows of the level below, whose pixels are `step` values apart. */
HOT static void down_next(const uint16_t *restrict a, const uint16_t *restrict b, int n, int step,
                          uint16_t *restrict h) {
    for (int i = 0; i + step < n; i++)
        h[i] = (uint16_t)((uint16_t)(a[i] + b[i] + a[i + step] + b[i + step] + 2) >> 2);
}

struct down_job {
    struct rows part; /* first: see run_split */
    const uint8_t *src;
    long sstride;
    int W, levels;
    uint8_t *dst;
    long dstride;
};

static void *down_rows(void *arg) {
    struct down_job *j = arg;
    int n = 3 * j->W, L = j->levels, ow = j->W >> L;
    uint16_t *scratch = malloc(sizeof(uint16_t) * 2 * (size_t)L * (size_t)n);
    if (!scratch) {
        j->part.ok = 0;
        return NULL;
    }
    /* lev[k - 1][0 or 1]: the last two rows made at level k */
    uint16_t *lev[4][2];
    for (int k = 0; k < L; k++) {
        lev[k][0] = scratch + (size_t)(2 * k) * n;
        lev[k][1] = scratch + (size_t)(2 * k + 1) * n;
    }
    for (int y = j->part.y0; y < j->part.y1; y++) {
        /* the level-1 rows in order; each second one completes a row of the level above, and so on */
        for (int i = 0; i < 1 << (L - 1); i++) {
            const uint8_t *a = j->src + ((size_t)y << L) * j->sstride + (size_t)(2 * i) * j->sstride;
            down_first(a, a + j->sstride, n, lev[0][i & 1]);
            for (int k = 1, idx = i; k < L && (idx & 1); k++) {
                idx >>= 1;
                down_next(lev[k - 1][0], lev[k - 1][1], n, 3 << k, lev[k][idx & 1]);
            }
        }
        const uint16_t *top = lev[L - 1][0];
        uint8_t *o = j->dst + (size_t)y * j->dstride;
        for (int c = 0; c < ow; c++) {
            const uint16_t *p = top + ((size_t)3 << L) * c;
            o[3 * c] = (uint8_t)p[0];
            o[3 * c + 1] = (uint8_t)p[1];
            o[3 * c + 2] = (uint8_t)p[2];
        }
    }
    free(scratch);
    j->part.ok = 1;
    return NULL;
}

/* The frame halved `levels` times (1 to 4), as that many cv2.resize(INTER_AREA) halvings.
 *
 * src:     H×W×3 uint8 (BGR), rows `sstride` bytes apart; H and W multiples of 2^levels
 * dst:     (H >> levels)×(W >> levels)×3 uint8, rows `dstride` bytes apart
 * threads: how many threads share the output rows
 * Returns 0, or -1 for sizes that do not fit or when memory runs out.
 */
int ep_downscale(const uint8_t *src, long sstride, int H, int W, int levels, uint8_t *dst, long dstride,
                 int threads) {
    if (levels < 1 || levels > 4 || H <= 0 || W <= 0 || H % (1 << levels) || W % (1 << levels) ||
        sstride < 3L * W || dstride < 3L * (W >> levels))
        return -1;
    /* under 1 MB a second thread costs more than it saves: 480×270 halved took 0.066 ms on one
     * thread and 0.095 on two; 1280×720 to a quarter 0.36 and 0.32 (AVX2 EPYC, medians of 1000) */
    if ((size_t)H * W * 3 < ((size_t)1 << 20))
        threads = 1;
    struct down_job base = {{0, H >> levels, 0}, src, sstride, W, levels, dst, dstride};
    return run_split(down_rows, &base, sizeof base, H >> levels, threads) ? 0 : -1;
}

/* ---------------------------------------------------------------------------------------------
 * The work at reduced resolution: the guided filter's coefficients with the cells' kinds, and the
 * mask-normalised blur. In OpenCV and numpy calls (edgeportrait/compose/matte.py and
 * background.py) each is a dozen or two calls on arrays of 30–130 thousand pixels, ~1 ms apiece at
 * 1080p, mostly the calls' own overhead and temporaries; here one pass over a few planes each.
 * Same arithmetic as there (float32 values, double sums where OpenCV's filters sum in double).
 * --------------------------------------------------------------------------------------------- */

/* cv2.BORDER_REFLECT (fedcba|abcdef|fedcba), as cv::borderInterpolate computes it */
static int reflect(int p, int n) {
    if (n == 1)
        return 0;
    while (p < 0 || p >= n)
        p = p < 0 ? -p - 1 : 2 * n - p - 1;
    return p;
}

/* Reflected indices for a window of radius r along a side of n: idx[j] = reflect(j − r), j < n + 2r. */
static int *reflect_table(int n, int r) {
    int *idx = malloc(sizeof(int) * ((size_t)n + 2 * (size_t)r));
    if (idx)
        for (int j = 0; j < n + 2 * r; j++)
            idx[j] = reflect(j - r, n);
    return idx;
}

/* A row of w values of `c` channels into `pad` with r pixels of BORDER_REFLECT on each side: the
 * middle copied, the 2r border pixels through the reflected-index table (idx[j] = reflect(j − r)). */
static void pad_row(const float *src, float *pad, int w, int c, int r, const int *idx) {
    memcpy(pad + (size_t)r * c, src, sizeof(float) * (size_t)w * c);
    for (int j = 0; j < r; j++)
        for (int ch = 0; ch < c; ch++) {
            pad[(size_t)j * c + ch] = src[(size_t)idx[j] * c + ch];
            pad[((size_t)w + r + j) * c + ch] = src[(size_t)idx[w + r + j] * c + ch];
        }
}

/* out[i] (+)= Σ_j k[j] · rows[j][i] for m = 1…4 rows at once (fewer passes over `out`) */
HOT static void sum4(const float *const *rows, const float *k, int m, int n, int add, float *restrict out) {
    const float *restrict r0 = rows[0], *restrict r1 = rows[m > 1 ? 1 : 0];
    const float *restrict r2 = rows[m > 2 ? 2 : 0], *restrict r3 = rows[m > 3 ? 3 : 0];
    float k0 = k[0], k1 = m > 1 ? k[1] : 0.f, k2 = m > 2 ? k[2] : 0.f, k3 = m > 3 ? k[3] : 0.f;
    switch (m * 2 + (add != 0)) {
    case 2:
        for (int i = 0; i < n; i++)
            out[i] = k0 * r0[i];
        break;
    case 3:
        for (int i = 0; i < n; i++)
            out[i] += k0 * r0[i];
        break;
    case 4:
        for (int i = 0; i < n; i++)
            out[i] = k0 * r0[i] + k1 * r1[i];
        break;
    case 5:
        for (int i = 0; i < n; i++)
            out[i] += k0 * r0[i] + k1 * r1[i];
        break;
    case 6:
        for (int i = 0; i < n; i++)
            out[i] = k0 * r0[i] + k1 * r1[i] + k2 * r2[i];
        break;
    case 7:
        for (int i = 0; i < n; i++)
            out[i] += k0 * r0[i] + k1 * r1[i] + k2 * r2[i];
        break;
    case 8:
        for (int i = 0; i < n; i++)
            out[i] = k0 * r0[i] + k1 * r1[i] + k2 * r2[i] + k3 * r3[i];
        break;
    default:
        for (int i = 0; i < n; i++)
            out[i] += k0 * r0[i] + k1 * r1[i] + k2 * r2[i] + k3 * r3[i];
    }
}

/* out[i] = kc·c[i] + k0·(a0[i] + b0[i]) + … (c NULL: out[i] += …) for m = 1…4 pairs of rows at
 * once: a symmetric kernel's taps on either side of the centre share a multiply. One loop per
 * (m, c) so that no lane does a zero-weighted tap. */
#define PAIR(q) k##q * (a##q[i] + b##q[i])
#define PAIRS_LOOP(expr)                                                                                               \
    do {                                                                                                               \
        if (c) {                                                                                                       \
            const float *restrict cc = c;                                                                              \
            for (int i = 0; i < n; i++)                                                                                \
                out[i] = kc * cc[i] + expr;                                                                            \
        } else {                                                                                                       \
            for (int i = 0; i < n; i++)                                                                                \
                out[i] += expr;                                                                                        \
        }                                                                                                              \
    } while (0)
HOT static void sum4_pairs(const float *c, float kc, const float *const *a, const float *const *b, const float *k,
                           int m, int n, float *restrict out) {
    const float *restrict a0 = a[0], *restrict b0 = b[0];
    const float *restrict a1 = m > 1 ? a[1] : a0, *restrict b1 = m > 1 ? b[1] : b0;
    const float *restrict a2 = m > 2 ? a[2] : a0, *restrict b2 = m > 2 ? b[2] : b0;
    const float *restrict a3 = m > 3 ? a[3] : a0, *restrict b3 = m > 3 ? b[3] : b0;
    float k0 = k[0], k1 = m > 1 ? k[1] : 0.f, k2 = m > 2 ? k[2] : 0.f, k3 = m > 3 ? k[3] : 0.f;
    switch (m) {
    case 1:
        PAIRS_LOOP(PAIR(0));
        break;
    case 2:
        PAIRS_LOOP(PAIR(0) + PAIR(1));
        break;
    case 3:
        PAIRS_LOOP(PAIR(0) + PAIR(1) + PAIR(2));
        break;
    default:
        PAIRS_LOOP(PAIR(0) + PAIR(1) + PAIR(2) + PAIR(3));
    }
}
#undef PAIRS_LOOP
#undef PAIR

/* out[i] = Σ_j k[j] · rows[j][i] over n values; a kernel equal to its mirror image (a box, a
 * Gaussian) sums each pair of rows at equal distance from the centre first: half the multiplies,
 * and half the passes over `out` */
static void sum_rows(const float *const *rows, const float *k, int taps, int n, float *out) {
    int r = taps / 2, symmetric = taps % 2 == 1 && taps >= 3;
    for (int j = 0; symmetric && j < r; j++)
        symmetric = k[j] == k[taps - 1 - j];
    if (!symmetric) {
        for (int j = 0; j < taps; j += 4)
            sum4(rows + j, k + j, taps - j < 4 ? taps - j : 4, n, j > 0, out);
        return;
    }
    const float *mirror[4];
    for (int j = 0; j < r; j += 4) {
        int m = r - j < 4 ? r - j : 4;
        for (int q = 0; q < m; q++)
            mirror[q] = rows[taps - 1 - j - q];
        sum4_pairs(j == 0 ? rows[r] : NULL, k[r], rows + j, mirror, k + j, m, n, out);
    }
}

/* A separable filter (box or Gaussian) of an h×w plane of `c` interleaved float channels, BORDER_REFLECT
 * on every side, the kernel k of length 2r+1 down the columns and along the rows alike
 * (cv2.boxFilter normalized: k[j] = 1/(2r+1); cv2.GaussianBlur: its kernel), in float; the output
 * rows [ya, yb) only (the input's rows through `ry`). `tmp` holds a row of (w + 2r)·c floats and
 * `rows` 2r+1 pointers. */
static void filter2(const float *in, float *out, int ya, int yb, int w, int c, int r, const float *k, const int *ry,
                    const int *rx, float *tmp, const float **rows) {
    size_t wc = (size_t)w * c;
    for (int y = ya; y < yb; y++) {
        for (int j = 0; j < 2 * r + 1; j++)
            rows[j] = in + (size_t)ry[y + j] * wc;
        float *dst = out + (size_t)y * wc;
        sum_rows(rows, k, 2 * r + 1, (int)wc, dst); /* down the columns into the output row */
        pad_row(dst, tmp, w, c, r, rx);
        for (int j = 0; j < 2 * r + 1; j++)
            rows[j] = tmp + (size_t)j * c;
        sum_rows(rows, k, 2 * r + 1, (int)wc, dst); /* then along it */
    }
}

/* dst = the AND of each byte with its left and right neighbours (the edge bytes repeated) */
HOT static void erode3_rows(const uint8_t *restrict src, uint8_t *restrict dst, int h, int w) {
    for (int y = 0; y < h; y++) {
        const uint8_t *s = src + (size_t)y * w;
        uint8_t *d = dst + (size_t)y * w;
        if (w == 1) {
            d[0] = s[0];
            continue;
        }
        d[0] = s[0] & s[1];
        for (int x = 1; x < w - 1; x++)
            d[x] = s[x - 1] & s[x] & s[x + 1];
        d[w - 1] = s[w - 2] & s[w - 1];
    }
}

/* The guided filter, streamed: a worker walks its rows once, keeping only the last 2r+1 rows of each
 * intermediate (the guide and its products, then a and b) in rings that stay in the cache. Its
 * first rows start 2r rows early (the windows reach that far); each row is computed from the same
 * rows in the same order whatever the split, so the threads' results are those of one. */
struct matte_job {
    struct rows part; /* first: see run_split */
    int lh, lw, r;
    float eps, settled;
    const uint8_t *luma;
    const float *p, *ones;
    const int *rx;
    float *coef;
    uint8_t *flat;
};

/* row y's ring slot: every row a window needs lies within 2r+1 consecutive rows (see reflect) */
static float *ring_row(float *ring, int y, int r, int lw) { return ring + (size_t)(y % (2 * r + 1)) * lw; }

/* One row of a box-filtered plane: the window's rows summed, then along the row. The plane is a
 * ring of 2r+1 rows (`ring` != 0) or whole. */
static void box_row(const float *plane, int ring, int y, int h, int lw, int r, const float *ones, const int *rx,
                    float *tmp, const float **rows, float *dst) {
    for (int j = 0; j < 2 * r + 1; j++) {
        int yy = reflect(y + j - r, h);
        rows[j] = ring ? ring_row((float *)plane, yy, r, lw) : plane + (size_t)yy * lw;
    }
    sum_rows(rows, ones, 2 * r + 1, lw, dst);
    pad_row(dst, tmp, lw, 1, r, rx);
    for (int j = 0; j < 2 * r + 1; j++)
        rows[j] = tmp + j;
    sum_rows(rows, ones, 2 * r + 1, lw, dst);
}

/* A row of the guide I = Y/255 and its products with p and with itself. */
HOT static void guide_row(const uint8_t *restrict luma, const float *restrict p, int lw, float *restrict I,
                          float *restrict Ip, float *restrict II) {
    for (int x = 0; x < lw; x++) {
        float g = (float)luma[x] * (1.0f / 255.0f);
        I[x] = g;
        Ip[x] = g * p[x];
        II[x] = g * g;
    }
}

/* A row of the guided filter's a and b from the means of I, p, Ip and II. */
HOT static void ab_row(const float *restrict mI, const float *restrict mp, const float *restrict mIp,
                       const float *restrict mII, float eps, int lw, float *restrict a, float *restrict b) {
    for (int x = 0; x < lw; x++) {
        float cov = mIp[x] - mI[x] * mp[x];
        float var = mII[x] - mI[x] * mI[x];
        float ai = cov / (var + eps);
        a[x] = ai;
        b[x] = mp[x] - ai * mI[x];
    }
}

/* A row of the coefficients (a/255, b interleaved) and of the flags: 1 where α = 1 for every
 * luminance, 2 where α = 0 likewise, 0 otherwise. */
HOT static void coef_row(const float *restrict ma, const float *restrict mb, float settled, int lw, float *restrict coef,
                         uint8_t *restrict flat) {
    for (int x = 0; x < lw; x++) {
        float af = ma[x] * (1.0f / 255.0f);
        coef[2 * x] = af;
        coef[2 * x + 1] = mb[x];
        unsigned is_flat = fabsf(af) * 255.0f <= settled;
        unsigned one = mb[x] >= 1.0f - settled, zero = mb[x] <= settled;
        flat[x] = (uint8_t)((one | (zero << 1)) & (0u - is_flat));
    }
}

static void *matte_rows(void *arg) {
    struct matte_job *j = arg;
    int lh = j->lh, lw = j->lw, r = j->r, y0 = j->part.y0, y1 = j->part.y1, win = 2 * r + 1;
    /* rings: I, Ip, II, a, b (p is whole); rows: 6 means; a padded row; the window's row pointers */
    float *buf = malloc(sizeof(float) * ((size_t)5 * win * lw + 6 * (size_t)lw + (size_t)lw + 2 * (size_t)r));
    const float **rows = malloc(sizeof(float *) * (size_t)win);
    if (!buf || !rows) {
        free(buf);
        free(rows);
        j->part.ok = 0;
        return NULL;
    }
    size_t ring = (size_t)win * lw;
    float *rI = buf, *rIp = rI + ring, *rII = rIp + ring, *ra = rII + ring, *rb = ra + ring;
    float *mI = rb + ring, *mp = mI + lw, *mIp = mp + lw, *mII = mIp + lw, *ma = mII + lw, *mb = ma + lw;
    float *tmp = mb + lw;
    /* rows of a and b in [y0 − r, y1 + r), of the guide in [y0 − 2r, y1 + 2r), clamped to the image */
    int in_next = y0 - 2 * r < 0 ? 0 : y0 - 2 * r, ab_next = y0 - r < 0 ? 0 : y0 - r;
    for (int y = y0; y < y1; y++) {
        int ab_last = y + r < lh - 1 ? y + r : lh - 1;
        for (; ab_next <= ab_last; ab_next++) {
            int in_last = ab_next + r < lh - 1 ? ab_next + r : lh - 1;
            for (; in_next <= in_last; in_next++)
                guide_row(j->luma + (size_t)in_next * lw, j->p + (size_t)in_next * lw, lw, ring_row(rI, in_next, r, lw),
                          ring_row(rIp, in_next, r, lw), ring_row(rII, in_next, r, lw));
            box_row(rI, 1, ab_next, lh, lw, r, j->ones, j->rx, tmp, rows, mI);
            box_row(j->p, 0, ab_next, lh, lw, r, j->ones, j->rx, tmp, rows, mp);
            box_row(rIp, 1, ab_next, lh, lw, r, j->ones, j->rx, tmp, rows, mIp);
            box_row(rII, 1, ab_next, lh, lw, r, j->ones, j->rx, tmp, rows, mII);
            ab_row(mI, mp, mIp, mII, j->eps, lw, ring_row(ra, ab_next, r, lw), ring_row(rb, ab_next, r, lw));
        }
        box_row(ra, 1, y, lh, lw, r, j->ones, j->rx, tmp, rows, ma);
        box_row(rb, 1, y, lh, lw, r, j->ones, j->rx, tmp, rows, mb);
        coef_row(ma, mb, j->settled, lw, j->coef + (size_t)y * lw * 2, j->flat + (size_t)y * lw);
    }
    free(buf);
    free(rows);
    j->part.ok = 1;
    return NULL;
}

/* The guided filter at the working resolution and the kinds of its cells (matte.make_low_matte).
 *
 * luma:   lh×lw uint8, contiguous: the frame's luminance at the working resolution (cv2 BGR2GRAY)
 * p:      lh×lw float32, contiguous: the model's alpha there (ramped, feathered)
 * r, eps: the guided filter's radius (>= 1) and regularisation
 * settled: α within this of 0 or 1 counts as 0 or 1
 * coef:   out, lh×lw×2 float32: per cell (a/255, b) with α = a·Y + b for the full-resolution Y
 * kind:   out, lh×lw uint8: 1 interior (α = 1 for every pixel the cell's coefficients reach),
 *         0 background (α = 0 likewise), 2 band
 * threads: how many threads share the rows
 * Returns 0, or -1 for sizes that do not fit or when memory runs out.
 */
int ep_low_matte(const uint8_t *luma, const float *p, int lh, int lw, int r, float eps, float settled, float *coef,
                 uint8_t *kind, int threads) {
    if (lh <= 0 || lw <= 0 || r < 1)
        return -1;
    size_t n = (size_t)lh * lw;
    uint8_t *flat = malloc(2 * n);
    int *rx = reflect_table(lw, r);
    float *ones = malloc(sizeof(float) * (2 * (size_t)r + 1)); /* the box's kernel: weights 1/(2r+1) */
    int ok = flat && rx && ones;
    if (ok) {
        for (int j = 0; j < 2 * r + 1; j++)
            ones[j] = (float)(1.0 / (2 * r + 1));
        struct matte_job job = {{0, lh, 0}, lh, lw, r, eps, settled, luma, p, ones, rx, coef, flat};
        ok = run_split(matte_rows, &job, sizeof job, lh, threads);
    }
    if (ok) {
        /* a full-resolution pixel mixes a cell with its neighbours: a cell is interior (background)
         * only if its whole 3×3 neighbourhood is, the edge cells repeated (cv2.erode,
         * BORDER_REPLICATE): the AND across each row into `across`, then down the columns */
        uint8_t *across = flat + n;
        erode3_rows(flat, across, lh, lw);
        for (int y = 0; y < lh; y++) {
            const uint8_t *up = across + (size_t)(y > 0 ? y - 1 : 0) * lw, *mid = across + (size_t)y * lw;
            const uint8_t *down = across + (size_t)(y + 1 < lh ? y + 1 : lh - 1) * lw;
            uint8_t *k = kind + (size_t)y * lw;
            for (int x = 0; x < lw; x++) {
                unsigned all = up[x] & mid[x] & down[x]; /* 1 interior, 2 background, 0 band: never 3 */
                k[x] = (uint8_t)(CELL_BAND - (all & 1) - (all & 2)); /* 1, 0 or 2 */
            }
        }
    }
    free(flat);
    free(rx);
    free(ones);
    return ok ? 0 : -1;
}

/* The blur's first pass: the frame weighted, as 4 channels (B·w, G·w,
 * R·w, 255·w), w = clip(1 − 3a, 0, 1), and each row's sums of those and of the plain frame (in
 * float along the row, each row alone, so the totals do not depend on the threads' split). */
struct acc_job {
    struct rows part; /* first: see run_split */
    int sw;
    const uint8_t *small;
    long sstride;
    const float *a;
    float *acc;
    double *row_sums; /* 7 per row: the 4 weighted channels, the 3 plain ones */
};

HOT static void *acc_rows(void *arg) {
    struct acc_job *j = arg;
    int sw = j->sw;
    for (int y = j->part.y0; y < j->part.y1; y++) {
        const uint8_t *s = j->small + (size_t)y * j->sstride;
        const float *a = j->a + (size_t)y * sw;
        float *q = j->acc + (size_t)y * sw * 4;
        float rs0 = 0.f, rs1 = 0.f, rs2 = 0.f, rs3 = 0.f, rp0 = 0.f, rp1 = 0.f, rp2 = 0.f;
        for (int x = 0; x < sw; x++) {
            float w = 1.0f - 3.0f * a[x];
            w = w < 0.f ? 0.f : (w > 1.f ? 1.f : w);
            float b = (float)s[3 * x], g = (float)s[3 * x + 1], r = (float)s[3 * x + 2];
            q[4 * x] = b * w;
            q[4 * x + 1] = g * w;
            q[4 * x + 2] = r * w;
            q[4 * x + 3] = 255.0f * w;
            rs0 += b * w;
            rs1 += g * w;
            rs2 += r * w;
            rs3 += 255.0f * w;
            rp0 += b;
            rp1 += g;
            rp2 += r;
        }
        double *sums = j->row_sums + (size_t)y * 7;
        sums[0] = rs0, sums[1] = rs1, sums[2] = rs2, sums[3] = rs3, sums[4] = rp0, sums[5] = rp1, sums[6] = rp2;
    }
    j->part.ok = 1;
    return NULL;
}

/* The blur's second pass, its rows shared by threads: the weighted frame filtered, then divided by
 * its weight. */
struct blur_job {
    struct rows part; /* first: see run_split */
    int sw, r;
    const float *k;
    const int *ry, *rx;
    const float *acc;
    float *blurred;
    float add[4];
    uint8_t *out;
    long ostride;
};

HOT static void *blur_rows(void *arg) {
    struct blur_job *j = arg;
    int sw = j->sw, r = j->r;
    float *tmp = malloc(sizeof(float) * ((size_t)sw + 2 * (size_t)r) * 4);
    const float **rows = malloc(sizeof(float *) * (2 * (size_t)r + 1));
    if (!tmp || !rows) {
        free(tmp);
        free(rows);
        j->part.ok = 0;
        return NULL;
    }
    filter2(j->acc, j->blurred, j->part.y0, j->part.y1, sw, 4, r, j->k, j->ry, j->rx, tmp, rows);
    float a0 = j->add[0], a1 = j->add[1], a2 = j->add[2], a3 = j->add[3];
    for (int y = j->part.y0; y < j->part.y1; y++) {
        uint8_t *o = j->out + (size_t)y * j->ostride;
        const float *q = j->blurred + (size_t)y * sw * 4;
        for (int x = 0; x < sw; x++) {
            /* one division per pixel; the values are >= 0, so + 0.5 and truncation round them */
            float inv = 255.0f / (q[4 * x + 3] + a3);
            float v0 = (q[4 * x] + a0) * inv + 0.5f, v1 = (q[4 * x + 1] + a1) * inv + 0.5f;
            float v2 = (q[4 * x + 2] + a2) * inv + 0.5f;
            o[3 * x] = (uint8_t)(v0 < 255.f ? v0 : 255.f);
            o[3 * x + 1] = (uint8_t)(v1 < 255.f ? v1 : 255.f);
            o[3 * x + 2] = (uint8_t)(v2 < 255.f ? v2 : 255.f);
        }
    }
    free(tmp);
    free(rows);
    j->part.ok = 1;
    return NULL;
}

/* The mask-normalised blur at the blur's resolution (background.masked_blur_low, after the dilate).
 *
 * small:   sh×sw×3 uint8 (BGR), rows `sstride` bytes apart: the frame at the blur's resolution
 * a:       sh×sw float32, contiguous: the person's alpha there, dilated by the exclusion margin
 * k, ks:   the Gaussian kernel (cv2.getGaussianKernel), odd length
 * fill_w:  the weight of the background's mean colour added everywhere
 * out:     sh×sw×3 uint8, rows `ostride` bytes apart: Σ k·w·F / Σ k·w, w = clip(1 − 3a, 0, 1)
 * threads: how many threads share the rows of the filter and the division
 * Returns 0, or -1 for sizes that do not fit or when memory runs out.
 */
int ep_masked_blur(const uint8_t *small, long sstride, const float *a, int sh, int sw, const float *k, int ks,
                   float fill_w, uint8_t *out, long ostride, int threads) {
    if (sh <= 0 || sw <= 0 || ks <= 0 || ks % 2 == 0 || sstride < 3L * sw || ostride < 3L * sw)
        return -1;
    size_t n = (size_t)sh * sw;
    float *acc = malloc(sizeof(float) * 8 * n);
    double *row_sums = malloc(sizeof(double) * 7 * (size_t)sh);
    if (!acc || !row_sums) {
        free(acc);
        free(row_sums);
        return -1;
    }
    float *blurred = acc + 4 * n;
    /* on the calling thread: at the blur's resolution this pass is a few tens of µs, less than
     * waking a worker costs */
    struct acc_job first = {{0, sh, 0}, sw, small, sstride, a, acc, row_sums};
    acc_rows(&first);
    int ok = first.part.ok;
    double sums[7] = {0, 0, 0, 0, 0, 0, 0};
    for (int y = 0; y < sh; y++) /* row by row in order: the same totals whatever the split */
        for (int c = 0; c < 7; c++)
            sums[c] += row_sums[(size_t)y * 7 + c];
    free(row_sums);
    /* the mean background colour fills where no background is near; with no background visible at
     * all, the frame's mean will do (it is fully covered) */
    float add[4];
    for (int ch = 0; ch < 3; ch++)
        add[ch] = fill_w * (float)(sums[3] > 255.0 ? 255.0 * sums[ch] / sums[3] : sums[4 + ch] / (double)n);
    add[3] = fill_w * 255.0f;
    int r = ks / 2;
    int *ry = reflect_table(sh, r), *rx = reflect_table(sw, r);
    ok = ok && ry && rx;
    /* below ~64k pixels a second thread costs more than it saves: 240×135 (1080p at blur 50) took
     * 0.39 ms on one thread and 0.41 on two, 480×270 1.51 and 1.16 (AVX2 EPYC, medians of 400) */
    if ((size_t)sh * sw < 65536)
        threads = 1;
    if (ok) {
        struct blur_job job = {{0, sh, 0}, sw, r, k, ry, rx, acc, blurred, {add[0], add[1], add[2], add[3]}, out, ostride};
        ok = run_split(blur_rows, &job, sizeof job, sh, threads);
    }
    free(ry);
    free(rx);
    if (!ok) {
        free(acc);
        return -1;
    }
    free(acc);
    return 0;
}
