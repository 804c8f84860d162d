/* The allocation rule of libs/domain/allocation.py (`_allocate_walk`), compiled.
 *
 * Why C: the cycle's allocation is a walk over every node and request with a few integer operations
 * each. In Python (or numpy, at ~5 us per call and hundreds of calls per tree depth) that walk cost
 * 2-3x a naive water-fill; here it costs a small fraction of one. The rule is not restated: this is a
 * line-by-line port of the Python walk, which stays the reference (tests compare the two on random and
 * depot-shaped trees) and the path for numbers beyond 64-bit integers.
 *
 * One call: allocate(parent, subtree_end, headroom, node, requested_watts, min_watts, weight, priority,
 * rank, rotation, states) with lists of ints (headroom: int or None) returns tuples (watts, states,
 * binding), or None when a number is out of the range the 64-bit fixed point is exact for: the caller
 * then takes the Python walk. ``states``: the caller's objects for IDLE, BELOW_MINIMUM, PAUSED, ALLOCATED
 * and CURTAILED, in that order.
 *
 * Pure: no I/O, no global state; the GIL is held throughout (it is short, and the lists are read once).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef int64_t i64;

enum { IDLE = 0, BELOW = 1, PAUSED = 2, ALLOCATED = 3, CURTAILED = 4 };

#define FINE_SHIFT 32                 /* levels in 2**-32 W per unit of weight, as allocation._FINE */
#define LIMIT ((i64)1 << 62)          /* every fixed-point sum stays below it (checked per class in fill) */
#define HUGE_INPUT ((i64)1 << 40)     /* watts, weights and ranks beyond this take the Python walk */
#define OUT_OF_RANGE 1

/* An array of m ints (at least one, so that an empty problem still gets a pointer to free). */
static i64 *ints(Py_ssize_t m) { return malloc(sizeof(i64) * (size_t)(m ? m : 1)); }

/* ---- reading the lists ---------------------------------------------------------------------- */

/* Reads a list (or tuple) of ints into a fresh array; -1 with an exception set, or OUT_OF_RANGE when a
 * value is beyond ``bound`` in magnitude (no exception: the caller answers None). */
static int read_ints(PyObject *seq, Py_ssize_t expect, i64 bound, i64 **out) {
    PyObject *fast = PySequence_Fast(seq, "expected a sequence of ints");
    if (!fast) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    if (expect >= 0 && n != expect) {
        Py_DECREF(fast);
        PyErr_SetString(PyExc_ValueError, "columns of different lengths");
        return -1;
    }
    i64 *a = ints(n);
    if (!a) {
        Py_DECREF(fast);
        PyErr_NoMemory();
        return -1;
    }
    PyObject **items = PySequence_Fast_ITEMS(fast);
    for (Py_ssize_t i = 0; i < n; i++) {
        int overflow = 0;
        long long v = PyLong_AsLongLongAndOverflow(items[i], &overflow);
        if (v == -1 && PyErr_Occurred()) {
            free(a);
            Py_DECREF(fast);
            return -1;
        }
        if (overflow || v > bound || v < -bound) {
            free(a);
            Py_DECREF(fast);
            return OUT_OF_RANGE;
        }
        a[i] = (i64)v;
    }
    Py_DECREF(fast);
    *out = a;
    return 0;
}

/* Column c of ``packed`` (six columns of k native 64-bit ints, one after the other: the same columns as the
 * lists, as the cycle's compiled connector pass makes them) into a fresh array: as read_ints. */
static int read_packed(PyObject *packed, int c, Py_ssize_t k, i64 bound, i64 **out) {
    Py_buffer view;
    if (PyObject_GetBuffer(packed, &view, PyBUF_SIMPLE) < 0) return -1;
    if (view.len != 6 * k * (Py_ssize_t)sizeof(i64)) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "packed: not six columns of the requests' length");
        return -1;
    }
    i64 *a = ints(k);
    if (!a) {
        PyBuffer_Release(&view);
        PyErr_NoMemory();
        return -1;
    }
    memcpy(a, (const char *)view.buf + (size_t)c * (size_t)k * sizeof(i64), (size_t)k * sizeof(i64));
    PyBuffer_Release(&view);
    for (Py_ssize_t i = 0; i < k; i++)
        if (a[i] > bound || a[i] < -bound) {
            free(a);
            return OUT_OF_RANGE;
        }
    *out = a;
    return 0;
}

/* ---- sorting ------------------------------------------------------------------------------- */

/* Sort keys are packed so that one comparison of (key, index) gives Python's stable sort order. */
typedef struct {
    i64 key;
    i64 index;
} keyed;

static int by_key_then_index(const void *a, const void *b) {
    const keyed *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);
}

/* Whether keys are already in (key, index) order (one priority class; requests listed in rank order), where
 * the sort can be skipped. */
static int in_order(const keyed *keys, Py_ssize_t m) {
    for (Py_ssize_t t = 1; t < m; t++)
        if (by_key_then_index(&keys[t - 1], &keys[t]) > 0) return 0;
    return 1;
}

/* Sorts keys by (key, index) as qsort with by_key_then_index does, where the indexes are already ascending
 * (input order): stably by key. Keys spanning a range not much larger than their count (ranks: positions in
 * node_id order) are placed by a counting sort in linear time (a 30,000-request class's qsort was a sixth of
 * the kernel); others are sorted by qsort. 0, or -1 with MemoryError set. */
static int sort_keys(keyed *keys, Py_ssize_t m) {
    if (m < 2 || in_order(keys, m)) return 0;
    i64 lo = keys[0].key, hi = keys[0].key;
    for (Py_ssize_t t = 1; t < m; t++) {
        if (keys[t].key < lo) lo = keys[t].key;
        if (keys[t].key > hi) hi = keys[t].key;
    }
    uint64_t span = (uint64_t)hi - (uint64_t)lo; /* no overflow: computed unsigned */
    if (span > (uint64_t)m * 4 + 1024) {
        qsort(keys, (size_t)m, sizeof(keyed), by_key_then_index);
        return 0;
    }
    Py_ssize_t buckets = (Py_ssize_t)span + 2;
    Py_ssize_t *start = calloc((size_t)buckets, sizeof(Py_ssize_t));
    keyed *sorted = malloc(sizeof(keyed) * (size_t)m);
    if (!start || !sorted) {
        free(start);
        free(sorted);
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t t = 0; t < m; t++) start[(uint64_t)keys[t].key - (uint64_t)lo + 1]++;
    for (Py_ssize_t b = 1; b < buckets; b++) start[b] += start[b - 1];
    for (Py_ssize_t t = 0; t < m; t++) sorted[start[(uint64_t)keys[t].key - (uint64_t)lo]++] = keys[t];
    memcpy(keys, sorted, sizeof(keyed) * (size_t)m);
    free(start);
    free(sorted);
    return 0;
}

/* A rounding item: (-remainder, tie, is_node, index) ascending, as allocation._round_shares sorts. */
typedef struct {
    i64 rem;
    i64 tie;
    i64 is_node;
    i64 index;
} item;

static int by_remainder(const void *a, const void *b) {
    const item *p = a, *q = b;
    if (p->rem != q->rem) return p->rem > q->rem ? -1 : 1; /* largest remainder first */
    if (p->tie != q->tie) return p->tie < q->tie ? -1 : 1;
    if (p->is_node != q->is_node) return p->is_node < q->is_node ? -1 : 1;
    return (p->index > q->index) - (p->index < q->index);
}

static i64 floor_div(i64 a, i64 b) {
    i64 q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
    return q;
}

static i64 gcd64(i64 a, i64 b) {
    while (b) {
        i64 t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* ---- the problem ---------------------------------------------------------------------------- */

typedef struct {
    Py_ssize_t n, k;
    i64 *parent, *subtree_end;
    char *capped;
    i64 *avail;
    i64 *node, *wanted, *minimum, *weight, *priority, *rank;
    i64 *watts, *state, *binding;
} problem;

/* `_level`: the largest integer x with f(x) = sum(w * clip(x, low, max(level, low))) <= target over the
 * requests lo..hi-1 (in by-node order); 0 in *found when even their tops stay within target.
 *
 * The Python walk sweeps the sorted breakpoints; here the answer (unique, so the method cannot change
 * it) is found by selection instead, in expected linear time: f is linear between breakpoints, so keep
 * an interval (L, R) with f(L) <= target < f(R), evaluate f at a breakpoint inside it picked from a
 * fixed pseudo-random sequence, narrow the interval, and retire every request that is constant or
 * linear throughout it into C + S * x. Sorting every saturated subtree's breakpoints cost more than all
 * the rest of the allocation on a 30,000-connector tree. */
static i64 saturation_level(const i64 *low, const i64 *level, const i64 *w, Py_ssize_t lo, Py_ssize_t hi,
                            i64 target, i64 *active, int *found) {
    i64 c = 0, s = 0;             /* f(x) = c + s * x + sum over the active requests, for x in [L, R] */
    i64 left = 0, right = INT64_MAX; /* right = INT64_MAX: no breakpoint found above target yet */
    Py_ssize_t a = 0;
    for (Py_ssize_t j = lo; j < hi; j++) {
        if (level[j] > low[j])
            active[a++] = j;
        else
            c += w[j] * low[j]; /* never rises: holds its minimum */
    }
    uint64_t seed = 0x9E3779B97F4A7C15ULL ^ (uint64_t)(hi - lo);
    while (a > 0) {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        i64 j = active[(seed >> 33) % (uint64_t)a];
        /* An active request has a breakpoint strictly inside (left, right): its start if above left, else
         * its end (otherwise the retirement below would have taken it). */
        i64 pivot = low[j] > left ? low[j] : level[j];
        i64 value = c + s * pivot;
        for (Py_ssize_t t = 0; t < a; t++) {
            i64 r = active[t];
            i64 x = pivot < low[r] ? low[r] : (pivot > level[r] ? level[r] : pivot);
            value += w[r] * x;
        }
        if (value <= target)
            left = pivot;
        else
            right = pivot;
        Py_ssize_t kept = 0;
        for (Py_ssize_t t = 0; t < a; t++) {
            i64 r = active[t];
            if (level[r] <= left)
                c += w[r] * level[r]; /* at its top throughout */
            else if (low[r] >= right)
                c += w[r] * low[r]; /* at its minimum throughout */
            else if (low[r] <= left && level[r] >= right)
                s += w[r]; /* rising throughout */
            else
                active[kept++] = r;
        }
        a = kept;
    }
    if (right == INT64_MAX || s == 0) { /* s == 0 with a right: minimums over target, which admission rules out */
        *found = 0;
        return 0;
    }
    *found = 1;
    return floor_div(target - c, s); /* f is c + s * x on [left, right]: the answer lies in [left, right) */
}

/* `_admit`: the requests of one class whose minimums fit, greedily in tie-break order. */
static Py_ssize_t admit(problem *p, const i64 *ordered, Py_ssize_t count, i64 *admitted, i64 *scratch_n,
                        i64 *path) {
    Py_ssize_t n = p->n;
    int with_min = 0;
    for (Py_ssize_t t = 0; t < count; t++)
        if (p->minimum[ordered[t]] > 0) with_min = 1;
    if (with_min) {
        i64 *minsum = scratch_n;
        memset(minsum, 0, sizeof(i64) * (size_t)n);
        for (Py_ssize_t t = 0; t < count; t++) {
            i64 r = ordered[t];
            if (p->minimum[r] > 0) minsum[p->node[r]] += p->minimum[r];
        }
        int fits = 1;
        for (Py_ssize_t i = n - 1; i >= 0; i--) {
            if (p->capped[i] && minsum[i] > p->avail[i]) {
                fits = 0;
                break;
            }
            if (p->parent[i] >= 0) minsum[p->parent[i]] += minsum[i];
        }
        if (!fits) {
            i64 *reserved = scratch_n;
            memset(reserved, 0, sizeof(i64) * (size_t)n);
            Py_ssize_t out = 0;
            for (Py_ssize_t t = 0; t < count; t++) {
                i64 r = ordered[t];
                i64 need = p->minimum[r];
                Py_ssize_t depth = 0;
                for (i64 i = p->node[r]; i >= 0; i = p->parent[i])
                    if (p->capped[i]) path[depth++] = i;
                i64 short_at = -1;
                for (Py_ssize_t d = 0; d < depth; d++)
                    if (p->avail[path[d]] - reserved[path[d]] < need) {
                        short_at = path[d];
                        break;
                    }
                if (short_at >= 0) {
                    p->state[r] = PAUSED;
                    p->binding[r] = short_at;
                    continue;
                }
                for (Py_ssize_t d = 0; d < depth; d++) reserved[path[d]] += need;
                admitted[out++] = r;
            }
            return out;
        }
    }
    memcpy(admitted, ordered, sizeof(i64) * (size_t)count);
    return count;
}

/* `_round_shares`: whole watts from shares in 1/unit W, largest remainder down the capped nodes. */
static int round_shares(problem *p, const i64 *node_of, const i64 *share, const i64 *tie, Py_ssize_t k, i64 unit,
                        i64 *granted) {
    Py_ssize_t n = p->n;
    int rc = -1;
    i64 *near = ints(n), *up = ints(n), *best = ints(n), *tops = ints(n), *members = ints(n + k);
    i64 *total = calloc((size_t)n + 1, sizeof(i64)), *target = calloc((size_t)n + 1, sizeof(i64));
    i64 *count = calloc((size_t)n + 1, sizeof(i64));
    item *items = malloc(sizeof(item) * (size_t)(n + k + 1));
    if (!near || !up || !total || !best || !target || !tops || !count || !members || !items) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t ntops = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        i64 par = p->parent[i];
        i64 above = par >= 0 ? near[par] : -1;
        best[i] = k;
        if (p->capped[i]) {
            near[i] = i;
            up[i] = above;
            tops[ntops++] = i;
        } else {
            near[i] = above;
            up[i] = -1;
        }
    }
    for (Py_ssize_t j = 0; j < k; j++) {
        i64 c = near[node_of[j]];
        if (c < 0) {
            granted[j] = -floor_div(-share[j], unit); /* a request under no cap: its share rounded up */
            continue;
        }
        total[c] += share[j];
        if (tie[j] < best[c]) best[c] = tie[j];
    }
    for (Py_ssize_t t = ntops - 1; t >= 0; t--) {
        i64 i = tops[t], u = up[i];
        if (u >= 0) {
            total[u] += total[i];
            if (best[i] < best[u]) best[u] = best[i];
        }
    }
    /* Each capped node's items as one run of `members` (requests first in request order, then child
     * capped nodes in preorder, as the Python walk lists them): a counting sort by group. */
    for (Py_ssize_t j = 0; j < k; j++) {
        i64 c = near[node_of[j]];
        if (c >= 0) count[c + 1]++;
    }
    for (Py_ssize_t t = 0; t < ntops; t++) {
        i64 i = tops[t];
        if (up[i] >= 0 && total[i]) count[up[i] + 1]++;
    }
    for (Py_ssize_t i = 0; i < n; i++) count[i + 1] += count[i];
    i64 *fill_at = ints(n);
    if (!fill_at) {
        PyErr_NoMemory();
        goto done;
    }
    memcpy(fill_at, count, sizeof(i64) * (size_t)n);
    for (Py_ssize_t j = 0; j < k; j++) {
        i64 c = near[node_of[j]];
        if (c >= 0) members[fill_at[c]++] = j; /* a request: j >= 0 */
    }
    for (Py_ssize_t t = 0; t < ntops; t++) {
        i64 i = tops[t];
        if (up[i] >= 0 && total[i]) members[fill_at[up[i]]++] = -1 - i; /* a node: encoded below zero */
    }
    free(fill_at);
    for (Py_ssize_t t = 0; t < ntops; t++) {
        i64 i = tops[t];
        if (!total[i]) continue;
        i64 left = up[i] >= 0 ? target[i] : -floor_div(-total[i], unit);
        Py_ssize_t m = 0;
        for (i64 s = count[i]; s < count[i + 1]; s++) {
            i64 x = members[s];
            if (x >= 0) {
                i64 whole = floor_div(share[x], unit), rem = share[x] - whole * unit;
                granted[x] = whole;
                left -= whole;
                if (rem) items[m++] = (item){rem, tie[x], 0, x};
            } else {
                i64 c = -1 - x;
                i64 whole = floor_div(total[c], unit), rem = total[c] - whole * unit;
                target[c] = whole;
                left -= whole;
                if (rem) items[m++] = (item){rem, best[c], 1, c};
            }
        }
        if (left > 0) {
            qsort(items, (size_t)m, sizeof(item), by_remainder);
            for (Py_ssize_t s = 0; s < m && s < left; s++) {
                if (items[s].is_node)
                    target[items[s].index] += 1;
                else
                    granted[items[s].index] += 1;
            }
        }
    }
    rc = 0;
done:
    free(near);
    free(up);
    free(total);
    free(best);
    free(target);
    free(tops);
    free(count);
    free(members);
    free(items);
    return rc;
}

/* `_fill`: one class's shares (weighted max-min under every cap), rounded, and what they use of every
 * cap (avail shrinks). Returns 0, -1 with an exception set, or OUT_OF_RANGE. */
static int fill(problem *p, const i64 *admitted, Py_ssize_t count, const i64 *tie_of) {
    Py_ssize_t n = p->n;
    i64 scale = 1, asked = 0;
    for (Py_ssize_t t = 0; t < count; t++) {
        i64 w = p->weight[admitted[t]];
        scale = scale / gcd64(scale, w) * w;
        if (scale >= ((i64)1 << 28)) return OUT_OF_RANGE;
        asked += p->wanted[admitted[t]];
    }
    i64 unit = scale << FINE_SHIFT;
    if (asked >= LIMIT / unit - 1) return OUT_OF_RANGE; /* (asked + 1) * unit must stay below LIMIT */
    int rc = -1;
    i64 *by_node = ints(count);
    i64 *node_of = ints(count);
    i64 *w = ints(count);
    i64 *low = ints(count);
    i64 *level = ints(count);
    i64 *bound = ints(count);
    i64 *share = ints(count);
    i64 *tie = ints(count);
    i64 *granted = calloc((size_t)(count ? count : 1), sizeof(i64)); /* a request under a cap left at 0 W */
    i64 *active = ints(count);
    i64 *first = calloc((size_t)n + 1, sizeof(i64)), *ginf = calloc((size_t)n + 1, sizeof(i64));
    i64 *use = calloc((size_t)n + 1, sizeof(i64));
    if (!by_node || !node_of || !w || !low || !level || !bound || !share || !tie || !granted || !active ||
        !first || !ginf || !use) {
        PyErr_NoMemory();
        goto done;
    }
    /* Requests in preorder of their node, stably (a counting sort): every subtree is one contiguous slice. */
    for (Py_ssize_t t = 0; t < count; t++) first[p->node[admitted[t]] + 1]++;
    for (Py_ssize_t i = 0; i < n; i++) first[i + 1] += first[i];
    memcpy(ginf, first, sizeof(i64) * (size_t)n); /* the next free place of each node, for the moment */
    for (Py_ssize_t t = 0; t < count; t++) by_node[ginf[p->node[admitted[t]]]++] = admitted[t];
    memset(ginf, 0, sizeof(i64) * (size_t)n);
    for (Py_ssize_t j = 0; j < count; j++) {
        i64 r = by_node[j];
        node_of[j] = p->node[r];
        w[j] = p->weight[r];
        i64 units = unit / w[j];
        low[j] = p->minimum[r] * units; /* the level where a request starts rising */
        level[j] = p->wanted[r] * units; /* capped below by the saturated nodes above it */
        bound[j] = -1;
        tie[j] = tie_of[r];
        ginf[node_of[j]] += p->wanted[r];
    }
    for (Py_ssize_t i = n - 1; i >= 0; i--) {
        i64 g = ginf[i];
        if (p->capped[i] && g > p->avail[i]) {
            Py_ssize_t lo = first[i], hi = first[p->subtree_end[i]];
            int found = 0;
            i64 lam = saturation_level(low, level, w, lo, hi, p->avail[i] * unit, active, &found);
            if (found)
                for (Py_ssize_t j = lo; j < hi; j++)
                    if (level[j] > lam) {
                        level[j] = lam;
                        bound[j] = i;
                    }
            g = p->avail[i];
        }
        if (p->parent[i] >= 0) ginf[p->parent[i]] += g;
    }
    for (Py_ssize_t j = 0; j < count; j++) share[j] = w[j] * (level[j] > low[j] ? level[j] : low[j]);
    if (round_shares(p, node_of, share, tie, count, unit, granted) < 0) goto done;
    for (Py_ssize_t j = 0; j < count; j++) use[node_of[j]] += granted[j];
    for (Py_ssize_t i = n - 1; i > 0; i--)
        if (p->parent[i] >= 0) use[p->parent[i]] += use[i];
    for (Py_ssize_t i = 0; i < n; i++)
        if (p->capped[i]) p->avail[i] -= use[i];
    for (Py_ssize_t j = 0; j < count; j++) {
        i64 r = by_node[j];
        p->watts[r] = granted[j];
        if (granted[j] >= p->wanted[r]) {
            p->state[r] = ALLOCATED;
        } else {
            p->state[r] = CURTAILED;
            p->binding[r] = bound[j];
        }
    }
    rc = 0;
done:
    free(by_node);
    free(node_of);
    free(w);
    free(low);
    free(level);
    free(bound);
    free(share);
    free(tie);
    free(granted);
    free(active);
    free(first);
    free(ginf);
    free(use);
    return rc;
}

/* `_allocate_walk`'s body: classes by priority, highest first; admission, then the fill. */
static int run(problem *p, i64 rotation) {
    Py_ssize_t k = p->k;
    int rc = -1;
    i64 *eligible = ints(k);
    i64 *ordered = ints(k);
    i64 *admitted = ints(k);
    i64 *tie_of = ints(k);
    keyed *keys = malloc(sizeof(keyed) * (size_t)(k ? k : 1));
    i64 *scratch_n = ints(p->n);
    i64 *path = ints(p->n);
    if (!eligible || !ordered || !admitted || !tie_of || !keys || !scratch_n || !path) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t m = 0;
    for (Py_ssize_t r = 0; r < k; r++) {
        p->watts[r] = 0;
        p->state[r] = IDLE;
        p->binding[r] = -1;
        if (p->wanted[r] <= 0) continue;
        if (p->minimum[r] > p->wanted[r]) {
            p->state[r] = BELOW;
            continue;
        }
        eligible[m++] = r;
    }
    /* By priority, highest first; within one, by rank then input order (Python's stable sort). */
    for (Py_ssize_t t = 0; t < m; t++) {
        keys[t].key = -p->priority[eligible[t]];
        keys[t].index = t;
    }
    if (sort_keys(keys, m) < 0) goto done;
    Py_ssize_t start = 0;
    while (start < m) {
        Py_ssize_t end = start;
        while (end < m && keys[end].key == keys[start].key) end++;
        Py_ssize_t size = end - start;
        for (Py_ssize_t t = start; t < end; t++) {
            i64 r = eligible[keys[t].index];
            keys[t].key = p->rank[r];
            keys[t].index = r; /* input order breaks rank ties */
        }
        if (sort_keys(keys + start, size) < 0) goto done;
        i64 shift = rotation % size;
        if (shift < 0) shift += size;
        for (Py_ssize_t t = 0; t < size; t++) {
            ordered[t] = keys[start + (t + shift) % size].index;
            tie_of[ordered[t]] = t;
        }
        Py_ssize_t count = admit(p, ordered, size, admitted, scratch_n, path);
        if (count) {
            int filled = fill(p, admitted, count, tie_of);
            if (filled) {
                rc = filled;
                goto done;
            }
        }
        start = end;
    }
    rc = 0;
done:
    free(eligible);
    free(ordered);
    free(admitted);
    free(tie_of);
    free(keys);
    free(scratch_n);
    free(path);
    return rc;
}

static PyObject *tuple_of(const i64 *a, Py_ssize_t k) {
    PyObject *out = PyTuple_New(k);
    if (!out) return NULL;
    for (Py_ssize_t i = 0; i < k; i++) {
        PyObject *v = PyLong_FromLongLong(a[i]);
        if (!v) {
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, i, v);
    }
    return out;
}

/* The states as the caller's objects (its five AllocationState members, in code order). */
static PyObject *states_of(const i64 *codes, Py_ssize_t k, PyObject *names) {
    PyObject *out = PyTuple_New(k);
    if (!out) return NULL;
    for (Py_ssize_t i = 0; i < k; i++) {
        PyObject *v = PyTuple_GET_ITEM(names, codes[i]);
        Py_INCREF(v);
        PyTuple_SET_ITEM(out, i, v);
    }
    return out;
}

static PyObject *allocate(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *parent_in, *end_in, *headroom_in, *cols[6];
    long long rotation_in;
    int overflow = 0;
    PyObject *rotation_obj, *names, *packed = Py_None;
    if (!PyArg_ParseTuple(args, "OOOOOOOOOOO!|O", &parent_in, &end_in, &headroom_in, &cols[0], &cols[1], &cols[2],
                          &cols[3], &cols[4], &cols[5], &rotation_obj, &PyTuple_Type, &names, &packed))
        return NULL;
    if (PyTuple_GET_SIZE(names) != 5) {
        PyErr_SetString(PyExc_ValueError, "states: the five states, in code order");
        return NULL;
    }
    rotation_in = PyLong_AsLongLongAndOverflow(rotation_obj, &overflow);
    if (rotation_in == -1 && PyErr_Occurred()) return NULL;
    if (overflow) Py_RETURN_NONE;

    problem p;
    memset(&p, 0, sizeof p);
    PyObject *result = NULL;
    int rc;
    i64 **columns[6] = {&p.node, &p.wanted, &p.minimum, &p.weight, &p.priority, &p.rank};
    rc = read_ints(parent_in, -1, HUGE_INPUT, &p.parent);
    if (rc) goto done;
    p.n = PySequence_Size(parent_in);
    rc = read_ints(end_in, p.n, HUGE_INPUT, &p.subtree_end);
    if (rc) goto done;
    if (packed != Py_None) { /* the columns from packed alone (the lists may be None) */
        Py_ssize_t bytes = PyObject_Length(packed);
        if (bytes < 0) {
            rc = -1;
            goto done;
        }
        p.k = bytes / (6 * (Py_ssize_t)sizeof(i64));
    } else {
        p.k = PySequence_Size(cols[0]);
    }
    for (int c = 0; c < 6; c++) {
        rc = packed == Py_None ? read_ints(cols[c], p.k, HUGE_INPUT, columns[c])
                               : read_packed(packed, c, p.k, HUGE_INPUT, columns[c]);
        if (rc) goto done;
    }
    for (Py_ssize_t r = 0; r < p.k; r++) {
        if (p.node[r] < 0 || p.node[r] >= p.n) {
            PyErr_SetString(PyExc_IndexError, "a request on no node of the tree");
            rc = -1;
            goto done;
        }
        if (p.minimum[r] < 0) { /* the Python walk's arithmetic for negative minimums: not ported */
            rc = OUT_OF_RANGE;
            goto done;
        }
        if (p.weight[r] < 1) p.weight[r] = 1;
    }
    for (Py_ssize_t i = 0; i < p.n; i++) {
        if (p.subtree_end[i] < i + 1 || p.subtree_end[i] > p.n || p.parent[i] >= i) {
            PyErr_SetString(PyExc_ValueError, "not a tree in preorder");
            rc = -1;
            goto done;
        }
    }
    {
        PyObject *fast = PySequence_Fast(headroom_in, "headroom: expected a sequence");
        if (!fast) {
            rc = -1;
            goto done;
        }
        if (PySequence_Fast_GET_SIZE(fast) != p.n) {
            Py_DECREF(fast);
            PyErr_SetString(PyExc_ValueError, "headroom and parent of different lengths");
            rc = -1;
            goto done;
        }
        p.capped = malloc((size_t)(p.n ? p.n : 1));
        p.avail = ints(p.n);
        if (!p.capped || !p.avail) {
            Py_DECREF(fast);
            PyErr_NoMemory();
            rc = -1;
            goto done;
        }
        PyObject **items = PySequence_Fast_ITEMS(fast);
        for (Py_ssize_t i = 0; i < p.n; i++) {
            if (items[i] == Py_None) {
                p.capped[i] = 0;
                p.avail[i] = 0;
                continue;
            }
            long long v = PyLong_AsLongLongAndOverflow(items[i], &overflow);
            if (v == -1 && PyErr_Occurred()) {
                Py_DECREF(fast);
                rc = -1;
                goto done;
            }
            if (overflow || v > HUGE_INPUT) {
                Py_DECREF(fast);
                rc = OUT_OF_RANGE;
                goto done;
            }
            p.capped[i] = 1;
            p.avail[i] = v > 0 ? v : 0; /* a node over its cap by itself has nothing to share */
        }
        Py_DECREF(fast);
    }
    p.watts = ints(p.k);
    p.state = ints(p.k);
    p.binding = ints(p.k);
    if (!p.watts || !p.state || !p.binding) {
        PyErr_NoMemory();
        rc = -1;
        goto done;
    }
    rc = run(&p, rotation_in);
    if (rc == 0) {
        PyObject *watts = tuple_of(p.watts, p.k), *state = states_of(p.state, p.k, names),
                 *binding = tuple_of(p.binding, p.k);
        if (watts && state && binding) result = PyTuple_Pack(3, watts, state, binding);
        Py_XDECREF(watts);
        Py_XDECREF(state);
        Py_XDECREF(binding);
    }
done:
    free(p.parent);
    free(p.subtree_end);
    free(p.capped);
    free(p.avail);
    for (int c = 0; c < 6; c++) free(*columns[c]);
    free(p.watts);
    free(p.state);
    free(p.binding);
    if (rc == OUT_OF_RANGE) Py_RETURN_NONE;
    return result;
}

static PyMethodDef methods[] = {
    {"allocate", allocate, METH_VARARGS,
     "allocate(parent, subtree_end, headroom, node, requested_watts, min_watts, weight, priority, rank, rotation,"
     " states) -> (watts, states, binding) | None: the Python walk's allocation; None when a number is beyond"
     " the 64-bit fixed point (take the walk)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_allocation_kernel",
    .m_doc = "The allocation walk of libs.domain.allocation, compiled.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__allocation_kernel(void) { return PyModule_Create(&module); }
