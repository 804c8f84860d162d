/* The cycle's inputs as columns by tree position, compiled (libs/domain/physical_view.py and cycle.py).
 *
 * Why C: a large depot's cycle reads tens of thousands of telemetry and demand records. Placing them by
 * tree position and reading the allocation's request fields out of them are one pass each over
 * records scattered in memory; in Python (a comprehension, or five C-level maps of attribute getters,
 * one per field) those passes cost about as much as the allocation itself. Nothing is decided here:
 * both functions answer None when the input is anything but the plain case (a record of a node not in
 * the tree, two records for one node, a number beyond 64 bits), and the caller's Python code, which
 * states the rule, answers instead.
 *
 *   placed(records, position, n) -> list | None
 *       a list of n items: at position[record.node_id] the record, None elsewhere.
 *   placed_again(records, position, order, hint) -> (list, hint) | None
 *       as placed, each record looked for first at its position in ``hint`` (int32 positions of an earlier
 *       call's records, or None: where the order is the same, no dict lookup), and this call's positions.
 *   request_columns(wish_at, positions, id_rank, next_of) -> (node, requested_watts, min_watts, weight,
 *                                                             priority, rank) | None
 *       for each position p: next_of[p] (p + 1), the fields of wish_at[p] clamped as the cycle clamps
 *       them (requested and minimum at 0, weight at 1), and id_rank[p]. The ints are the records' own
 *       where they need no clamping (making new ones was most of the cost).
 *   connector_pass(at, wish_of, reading_of, parent, meters, earliest, latest, requested, draw, id_rank, next_of)
 *       -> (wished, fallen, packed, requested_total) | None
 *       the physical view's first pass, over the controllable connectors at ``at`` (see physical_view):
 *       each one's positive request into requested and its fresh positive draw
 *       (under a metered parent) into draw, both added to its parent's; ``wished``: the positions with a
 *       wish, ``fallen``: those whose reading under a metered parent is not fresh (Python resolves them),
 *       ``packed``: the wished positions' request columns, as request_columns makes them but as native
 *       64-bit ints, one column after the other (each wish read once, for both; see
 *       allocation.RequestColumns), and the sum of their requested watts (None beyond 64 bits).
 *       None, with nothing written, when a number is beyond 64 bits or a connector has no parent.
 *
 *   top_down(inner, parent, cons, net, gen, reading_of, rules, order, root_tight, root_gen_checked)
 *       -> (tight, meters, gen_checked)
 *       the physical view's walk down the nodes other than connectors, in preorder: each one's tightest
 *       consumption or net cap (the limit's own int) on it or above it, whether it or an ancestor is
 *       metered (a reading or a fallback rule), and whether a net or generation cap is on it or above it.
 *   breaches(positions, cons, gen, net, base, requested, generation, generation_seen, controllable,
 *            fallback_used, generation_fallback, order, node_cap, ancestor) -> [(node_id, constraint, demand,
 *            code, fallback)] | None
 *       the cycle's check of the caps at the positions (see cycle._breaches): a consumption cap broken by
 *       base + requested, a generation cap by the generation seen, a net cap by base + requested -
 *       generation; NODE_CAP_EXCEEDED when the node is controllable or its own base breaks the cap,
 *       ANCESTOR_CAP_EXCEEDED otherwise. None when a number is beyond 64 bits.
 *   subtree_sums(uncontrolled, parent, at_least, less_draw, base, draw, requested, generation,
 *                generation_seen, fallback_used, generation_fallback) -> (root_base, root_generation,
 *                root_generation_seen, root_requested, root_fallback, root_generation_fallback) | None
 *       the physical view's walk up the uncontrolled nodes (reverse preorder): each one's base, the
 *       larger of its children's bases, at_least[p] and less_draw[p] minus its subtree's draw (None: no
 *       such value), and every column added to its parent's. None, with nothing written, when a number
 *       is beyond 64 bits or a node's parent is not among the uncontrolled.
 *
 * Pure: no I/O, no global state beyond the attributes' names (and where their types keep them) and the scratch
 * memory (never read before it is written); the GIL is held throughout.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

/* An attribute the passes read from tens of thousands of records, and where the records' type keeps it.
 * The records are slotted dataclasses: the attribute is a member descriptor, a pointer at a fixed offset in
 * every instance. Reading it there skips the generic lookup (the type's dictionaries, the descriptor
 * call), a third of the connector pass's time. Any other type is read through getattr, as before. */
typedef struct {
    const char *text;
    PyObject *name;     /* interned */
    PyTypeObject *type; /* the type last seen (a strong reference), or NULL */
    Py_ssize_t offset;  /* where that type keeps the attribute; -1: read it through getattr */
} attribute;

static attribute LIMIT = {.text = "limit_watts"}, NODE_ID = {.text = "node_id"},
                 REQUESTED = {.text = "requested_watts"}, MINIMUM = {.text = "min_watts"}, WEIGHT = {.text = "weight"},
                 PRIORITY = {.text = "priority"}, VALID = {.text = "valid"}, OBSERVED_AT = {.text = "observed_at"},
                 MEASURED = {.text = "measured_watts"};
static attribute *ATTRIBUTES[] = {&LIMIT, &NODE_ID, &REQUESTED, &MINIMUM, &WEIGHT, &PRIORITY, &VALID, &OBSERVED_AT,
                                  &MEASURED};

/* Where instances of ``type`` keep the attribute: its offset when the type reads attributes generically and
 * the attribute is a plain object slot (a data descriptor, so an instance dict cannot shadow it), -1 when not,
 * -2 with an exception set. */
static Py_ssize_t slot_offset(PyTypeObject *type, PyObject *name) {
    if (type->tp_getattro != PyObject_GenericGetAttr) return -1;
    PyObject *descr = PyObject_GetAttr((PyObject *)type, name);
    if (!descr) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError)) return -2;
        PyErr_Clear();
        return -1;
    }
    Py_ssize_t offset = -1;
    if (Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
        PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
        if (member->type == T_OBJECT_EX && !(member->flags & READ_RESTRICTED)) offset = member->offset;
    }
    Py_DECREF(descr);
    return offset;
}

/* ``obj.<attribute>``: a new reference, or NULL with an exception set. */
static PyObject *get(PyObject *obj, attribute *a) {
    PyTypeObject *type = Py_TYPE(obj);
    if (type != a->type) {
        Py_ssize_t offset = slot_offset(type, a->name);
        if (offset == -2) return NULL;
        Py_INCREF(type);
        Py_XSETREF(a->type, type);
        a->offset = offset;
    }
    if (a->offset >= 0) {
        PyObject *value = *(PyObject **)((char *)obj + a->offset);
        if (value) {
            Py_INCREF(value);
            return value;
        }
    }
    return PyObject_GetAttr(obj, a->name); /* not a plain slot, or one not set: getattr says what it is */
}

/* Scratch memory for the passes' arrays, kept between calls: a large tree's arrays are megabytes, and
 * memory freshly mapped for each call faulted in ~2,000 pages a cycle (a millisecond or more). Used by one
 * call at a time (the GIL is held); a call made while it is in use (a comparison calling back into
 * Python) gets its own. */
static char *scratch_memory = NULL;
static size_t scratch_size = 0;
static int scratch_in_use = 0;

/* ``bytes`` of uninitialised memory, or NULL with MemoryError set; *own: whether the caller frees it. */
static void *scratch(size_t bytes, int *own) {
    if (bytes == 0) bytes = 1;
    if (scratch_in_use) {
        *own = 1;
        void *mem = malloc(bytes);
        if (!mem) PyErr_NoMemory();
        return mem;
    }
    if (bytes > scratch_size) {
        free(scratch_memory);
        scratch_memory = malloc(bytes);
        scratch_size = scratch_memory ? bytes : 0;
        if (!scratch_memory) {
            PyErr_NoMemory();
            return NULL;
        }
    }
    *own = 0;
    scratch_in_use = 1;
    return scratch_memory;
}

static void scratch_done(void *mem, int own) {
    if (own)
        free(mem);
    else if (mem)
        scratch_in_use = 0;
}

/* A new list of n references to ``item``. */
static PyObject *filled(Py_ssize_t n, PyObject *item) {
    PyObject *list = PyList_New(n);
    if (!list) return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_INCREF(item);
        PyList_SET_ITEM(list, i, item);
    }
    return list;
}

/* ``records`` by the position of their node_id (see placed). With ``order`` (the node_id at each position) and
 * ``hint`` (int32 positions, one per record, from an earlier call: a bytes-like object, or NULL), a record is
 * first looked for at its hinted position, and the dict only when its node is not there; ``hint_out`` (int32,
 * one per record) gets each record's position. Most cycles of a microgrid bring their records in the order of
 * the previous one: checking the hinted place reads one pointer where the dict lookup reads the id's hash, the
 * dict's slot and its entry, each in memory the rest of the cycle has evicted. A new reference to the list,
 * Py_None (a new reference) outside the plain case, or NULL with an exception set. */
static PyObject *place(PyObject *records, PyObject *position, Py_ssize_t n, PyObject *order, const int32_t *hint,
                       Py_ssize_t hinted, int32_t *hint_out) {
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "n: a number of nodes");
        return NULL;
    }
    PyObject *fast = PySequence_Fast(records, "records: expected a sequence");
    if (!fast) return NULL;
    PyObject *out = filled(n, Py_None);
    if (!out) {
        Py_DECREF(fast);
        return NULL;
    }
    Py_ssize_t m = PySequence_Fast_GET_SIZE(fast);
    PyObject **items = PySequence_Fast_ITEMS(fast);
    for (Py_ssize_t r = 0; r < m; r++) {
        PyObject *node_id = get(items[r], &NODE_ID);
        if (!node_id) goto fail;
        Py_ssize_t pos = -1;
        if (r < hinted && hint[r] >= 0 && hint[r] < n) {
            PyObject *there = PyList_GET_ITEM(order, hint[r]);
            int same = there == node_id;
            if (!same && PyUnicode_CheckExact(there) && PyUnicode_CheckExact(node_id)) {
                same = PyUnicode_Compare(there, node_id) == 0;
                if (PyErr_Occurred()) {
                    Py_DECREF(node_id);
                    goto fail;
                }
            }
            if (same) pos = hint[r];
        }
        if (pos < 0) {
            PyObject *at = PyDict_GetItemWithError(position, node_id); /* borrowed */
            if (!at) {
                Py_DECREF(node_id);
                if (PyErr_Occurred()) goto fail;
                goto plain_case_only; /* a node not in the tree */
            }
            pos = PyLong_AsSsize_t(at);
            if (pos == -1 && PyErr_Occurred()) {
                Py_DECREF(node_id);
                goto fail;
            }
        }
        Py_DECREF(node_id);
        if (pos < 0 || pos >= n) {
            PyErr_SetString(PyExc_IndexError, "a position outside the tree");
            goto fail;
        }
        if (PyList_GET_ITEM(out, pos) != Py_None) goto plain_case_only; /* two records for one node */
        if (hint_out) hint_out[r] = (int32_t)pos;
        Py_DECREF(Py_None);
        Py_INCREF(items[r]);
        PyList_SET_ITEM(out, pos, items[r]);
    }
    Py_DECREF(fast);
    return out;
plain_case_only:
    Py_DECREF(fast);
    Py_DECREF(out);
    Py_RETURN_NONE;
fail:
    Py_DECREF(fast);
    Py_DECREF(out);
    return NULL;
}

static PyObject *placed(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *records, *position;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "OO!n", &records, &PyDict_Type, &position, &n)) return NULL;
    return place(records, position, n, NULL, NULL, 0, NULL);
}

static PyObject *placed_again(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *records, *position, *order, *hint;
    if (!PyArg_ParseTuple(args, "OO!O!O", &records, &PyDict_Type, &position, &PyList_Type, &order, &hint)) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(order), m = PyObject_Length(records);
    if (m < 0) return NULL;
    if (n > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "a tree of more than 2**31 nodes");
        return NULL;
    }
    Py_buffer given = {0};
    if (hint != Py_None) {
        if (PyObject_GetBuffer(hint, &given, PyBUF_SIMPLE) < 0) return NULL;
    }
    PyObject *made = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)sizeof(int32_t) * m);
    PyObject *out = NULL, *result = NULL;
    if (made) {
        const int32_t *was = given.buf;
        Py_ssize_t hinted = hint != Py_None ? given.len / (Py_ssize_t)sizeof(int32_t) : 0;
        out = place(records, position, n, order, was, hinted, (int32_t *)PyBytes_AS_STRING(made));
    }
    if (hint != Py_None) PyBuffer_Release(&given);
    if (out == Py_None) {
        Py_DECREF(made);
        return out;
    }
    if (out) result = PyTuple_Pack(2, out, made);
    Py_XDECREF(out);
    Py_XDECREF(made);
    return result;
}

/* The attribute ``name`` of ``obj``, an int, raised to ``floor`` if below it: a new reference (the
 * attribute's own int when it is not raised) with its value in *value, NULL with an exception set, or
 * Py_None (a new reference) when the int is beyond 64 bits. */
static PyObject *field(PyObject *obj, attribute *name, long long floor, long long *value) {
    PyObject *x = get(obj, name);
    if (!x) return NULL;
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(x, &overflow);
    if (v == -1 && PyErr_Occurred()) {
        Py_DECREF(x);
        return NULL;
    }
    if (overflow) {
        Py_DECREF(x);
        Py_RETURN_NONE;
    }
    if (v < floor) {
        Py_DECREF(x);
        *value = floor;
        return PyLong_FromLongLong(floor);
    }
    *value = v;
    return x;
}

/* Row r of the request columns: ``wish``'s fields clamped as the cycle clamps them (requested and minimum at
 * 0, weight at 1, priority as it is), its node and its rank; into ``cols`` (lists of at least r + 1 items, row
 * r empty) when given, and with ``packed``, as 64-bit ints at packed[c * stride + r] for column c. 0, 1 when
 * a value is beyond 64 bits (the row may be partly filled: the caller drops the columns), -1 with an
 * exception set. */
static int request_row(PyObject **cols, Py_ssize_t r, PyObject *wish, PyObject *node, PyObject *rank,
                       long long *packed, Py_ssize_t stride) {
    static attribute *names[4] = {&REQUESTED, &MINIMUM, &WEIGHT, &PRIORITY};
    static const long long floor[4] = {0, 0, 1, LLONG_MIN};
    long long values[6];
    for (int f = 0; f < 4; f++) {
        PyObject *v = field(wish, names[f], floor[f], &values[f + 1]);
        if (!v) return -1;
        if (v == Py_None) {
            Py_DECREF(v);
            return 1;
        }
        if (cols)
            PyList_SET_ITEM(cols[f + 1], r, v);
        else
            Py_DECREF(v);
    }
    if (cols) {
        Py_INCREF(node);
        Py_INCREF(rank);
        PyList_SET_ITEM(cols[0], r, node);
        PyList_SET_ITEM(cols[5], r, rank);
    }
    if (packed) {
        int overflow = 0, overflow_rank = 0;
        values[0] = PyLong_AsLongLongAndOverflow(node, &overflow);
        values[5] = PyLong_AsLongLongAndOverflow(rank, &overflow_rank);
        if (PyErr_Occurred()) return -1;
        if (overflow || overflow_rank) return 1;
        for (int c = 0; c < 6; c++) packed[c * stride + r] = values[c];
    }
    return 0;
}

static PyObject *request_columns(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *wish_at, *positions, *id_rank, *next_of;
    if (!PyArg_ParseTuple(args, "O!O!O!O!", &PyList_Type, &wish_at, &PyList_Type, &positions, &PyList_Type, &id_rank,
                          &PyList_Type, &next_of))
        return NULL;
    Py_ssize_t k = PyList_GET_SIZE(positions), n = PyList_GET_SIZE(wish_at);
    if (PyList_GET_SIZE(id_rank) != n || PyList_GET_SIZE(next_of) != n) {
        PyErr_SetString(PyExc_ValueError, "wish_at, id_rank and next_of of different lengths");
        return NULL;
    }
    PyObject *cols[6] = {NULL, NULL, NULL, NULL, NULL, NULL};
    for (int c = 0; c < 6; c++) {
        cols[c] = PyList_New(k);
        if (!cols[c]) goto fail;
    }
    for (Py_ssize_t r = 0; r < k; r++) {
        Py_ssize_t pos = PyLong_AsSsize_t(PyList_GET_ITEM(positions, r));
        if (pos == -1 && PyErr_Occurred()) goto fail;
        if (pos < 0 || pos >= n) {
            PyErr_SetString(PyExc_IndexError, "a position outside the tree");
            goto fail;
        }
        int rc = request_row(cols, r, PyList_GET_ITEM(wish_at, pos), PyList_GET_ITEM(next_of, pos),
                             PyList_GET_ITEM(id_rank, pos), NULL, 0);
        if (rc < 0) goto fail;
        if (rc) goto plain_case_only;
    }
    return Py_BuildValue("(NNNNNN)", cols[0], cols[1], cols[2], cols[3], cols[4], cols[5]);
plain_case_only:
    for (int c = 0; c < 6; c++) Py_XDECREF(cols[c]);
    Py_RETURN_NONE;
fail:
    for (int c = 0; c < 6; c++) Py_XDECREF(cols[c]);
    return NULL;
}

/* An int attribute of ``obj`` as a 64-bit int: 0 with *v set and *obj_out a new reference to the int,
 * 1 when beyond 64 bits, -1 with an exception set. */
static int int_field(PyObject *obj, attribute *name, long long *v, PyObject **obj_out) {
    PyObject *x = get(obj, name);
    if (!x) return -1;
    int overflow = 0;
    *v = PyLong_AsLongLongAndOverflow(x, &overflow);
    if ((*v == -1 && PyErr_Occurred()) || overflow) {
        Py_DECREF(x);
        return overflow ? 1 : -1;
    }
    *obj_out = x;
    return 0;
}

/* A positive int attribute of ``record`` kept in *kept (a new reference; left NULL when not positive)
 * and added to *parent_sum: 0, 1 when beyond 64 bits (alone or in the sum), -1 with an exception set. */
static int take_positive(PyObject *record, attribute *name, PyObject **kept, long long *parent_sum) {
    long long v;
    PyObject *obj;
    int rc = int_field(record, name, &v, &obj);
    if (rc) return rc;
    if (v <= 0) {
        Py_DECREF(obj);
        return 0;
    }
    *kept = obj;
    return __builtin_add_overflow(*parent_sum, v, parent_sum) ? 1 : 0;
}

/* Adds the per-parent sums to a list of ints in place. */
static int add_sums(PyObject *column, const long long *sum, Py_ssize_t n) {
    for (Py_ssize_t p = 0; p < n; p++) {
        if (sum[p] == 0) continue;
        PyObject *add = PyLong_FromLongLong(sum[p]);
        if (!add) return -1;
        PyObject *total = PyNumber_Add(PyList_GET_ITEM(column, p), add);
        Py_DECREF(add);
        if (!total) return -1;
        PyObject *old = PyList_GET_ITEM(column, p);
        PyList_SET_ITEM(column, p, total);
        Py_DECREF(old);
    }
    return 0;
}

static PyObject *connector_pass(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *at, *wish_of, *reading_of, *parent, *meters, *earliest, *latest, *requested, *draw, *id_rank, *next_of;
    if (!PyArg_ParseTuple(args, "O!O!O!O!O!OOO!O!O!O!", &PyList_Type, &at, &PyList_Type, &wish_of, &PyList_Type,
                          &reading_of, &PyList_Type, &parent, &PyList_Type, &meters, &earliest, &latest, &PyList_Type,
                          &requested, &PyList_Type, &draw, &PyList_Type, &id_rank, &PyList_Type, &next_of))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(parent), k = PyList_GET_SIZE(at);
    if (PyList_GET_SIZE(wish_of) != n || PyList_GET_SIZE(reading_of) != n || PyList_GET_SIZE(meters) != n ||
        PyList_GET_SIZE(requested) != n || PyList_GET_SIZE(draw) != n || PyList_GET_SIZE(id_rank) != n ||
        PyList_GET_SIZE(next_of) != n) {
        PyErr_SetString(PyExc_ValueError, "columns of different lengths");
        return NULL;
    }
    /* Read everything first, so that nothing is written when the Python pass has to answer instead. */
    int own = 0;
    size_t zeroed = 2 * sizeof(PyObject *) * (size_t)k + 2 * sizeof(long long) * (size_t)n;
    char *mem = scratch(zeroed + 6 * sizeof(long long) * (size_t)k, &own);
    long long *packed = NULL; /* the request columns as 64-bit ints, column c at packed[c * k] */
    PyObject **asked = NULL, **drawn = NULL; /* a positive request's int, a positive fresh draw's int */
    long long *asked_sum = NULL, *drawn_sum = NULL;
    PyObject *wished = PyList_New(0), *fallen = PyList_New(0), *result = NULL;
    Py_ssize_t rows = 0; /* of the wishes' request columns, packed row by row */
    int handed_back = 0;
    if (!mem || !wished || !fallen) goto done;
    memset(mem, 0, zeroed);
    asked = (PyObject **)mem;
    drawn = asked + k;
    asked_sum = (long long *)(drawn + k);
    drawn_sum = asked_sum + n;
    packed = drawn_sum + n;
    for (Py_ssize_t i = 0; i < k; i++) {
        PyObject *pos_obj = PyList_GET_ITEM(at, i);
        Py_ssize_t pos = PyLong_AsSsize_t(pos_obj);
        if (pos == -1 && PyErr_Occurred()) goto done;
        if (pos < 0 || pos >= n) {
            PyErr_SetString(PyExc_IndexError, "a position outside the tree");
            goto done;
        }
        Py_ssize_t p = PyLong_AsSsize_t(PyList_GET_ITEM(parent, pos));
        if (p == -1 && PyErr_Occurred()) goto done;
        if (p < 0 || p >= n) { /* a connector at the first level: not a valid tree, left to Python */
            handed_back = 1;
            goto done;
        }
        PyObject *wish = PyList_GET_ITEM(wish_of, pos);
        if (wish != Py_None) {
            int rc = take_positive(wish, &REQUESTED, &asked[i], &asked_sum[p]);
            if (rc) {
                handed_back = rc > 0;
                goto done;
            }
            if (PyList_Append(wished, pos_obj)) goto done;
            rc = request_row(NULL, rows++, wish, PyList_GET_ITEM(next_of, pos), PyList_GET_ITEM(id_rank, pos), packed,
                             k);
            if (rc) {
                handed_back = rc > 0;
                goto done;
            }
        }
        PyObject *reading = PyList_GET_ITEM(reading_of, pos);
        if (reading == Py_None) continue;
        int metered = PyObject_IsTrue(PyList_GET_ITEM(meters, p));
        if (metered < 0) goto done;
        if (!metered) continue;
        /* fresh: valid and earliest <= observed_at <= latest (compared only when valid, as Python does) */
        PyObject *valid_obj = get(reading, &VALID);
        if (!valid_obj) goto done;
        int fresh = PyObject_IsTrue(valid_obj);
        Py_DECREF(valid_obj);
        if (fresh < 0) goto done;
        if (fresh) {
            PyObject *observed = get(reading, &OBSERVED_AT);
            if (!observed) goto done;
            fresh = PyObject_RichCompareBool(earliest, observed, Py_LE);
            if (fresh > 0) fresh = PyObject_RichCompareBool(observed, latest, Py_LE);
            Py_DECREF(observed);
            if (fresh < 0) goto done;
        }
        if (!fresh) {
            if (PyList_Append(fallen, pos_obj)) goto done;
            continue;
        }
        int rc = take_positive(reading, &MEASURED, &drawn[i], &drawn_sum[p]);
        if (rc) {
            handed_back = rc > 0;
            goto done;
        }
    }
    /* Then write: each connector's request and draw at its position, the sums at its parent. */
    for (Py_ssize_t i = 0; i < k; i++) {
        Py_ssize_t pos = PyLong_AsSsize_t(PyList_GET_ITEM(at, i));
        if (asked[i]) {
            if (PyList_SetItem(requested, pos, asked[i])) { /* steals the reference, even on failure */
                asked[i] = NULL;
                goto done;
            }
            asked[i] = NULL;
        }
        if (drawn[i]) {
            if (PyList_SetItem(draw, pos, drawn[i])) {
                drawn[i] = NULL;
                goto done;
            }
            drawn[i] = NULL;
        }
    }
    if (add_sums(requested, asked_sum, n) || add_sums(draw, drawn_sum, n)) goto done;
    PyObject *packed_bytes = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(6 * sizeof(long long)) * rows);
    if (!packed_bytes) goto done;
    long long total = 0; /* of the requested watts (clamped at 0): None when beyond 64 bits */
    int total_fits = 1;
    for (Py_ssize_t r = 0; r < rows && total_fits; r++)
        total_fits = !__builtin_add_overflow(total, packed[(size_t)k + (size_t)r], &total);
    for (int c = 0; c < 6; c++)
        memcpy(PyBytes_AS_STRING(packed_bytes) + (size_t)c * sizeof(long long) * (size_t)rows, packed + (size_t)c * k,
               sizeof(long long) * (size_t)rows);
    PyObject *total_obj = total_fits ? PyLong_FromLongLong(total) : Py_NewRef(Py_None);
    if (!total_obj) {
        Py_DECREF(packed_bytes);
        goto done;
    }
    result = Py_BuildValue("(OONN)", wished, fallen, packed_bytes, total_obj);
done:
    if (asked)
        for (Py_ssize_t i = 0; i < k; i++) Py_XDECREF(asked[i]);
    if (drawn)
        for (Py_ssize_t i = 0; i < k; i++) Py_XDECREF(drawn[i]);
    scratch_done(mem, own);
    Py_XDECREF(wished);
    Py_XDECREF(fallen);
    if (handed_back) {
        Py_XDECREF(result);
        Py_RETURN_NONE;
    }
    return result;
}

/* ``a`` < ``b`` for two ints: 1, 0, or -1 with an exception set. */
static int less(PyObject *a, PyObject *b) { return PyObject_RichCompareBool(a, b, Py_LT); }

/* The tighter of ``best`` (borrowed, may be Py_None) and the limit of ``constraint`` (Py_None: none);
 * a borrowed reference to the winner (the constraint's limit is kept alive by the constraint, which the
 * caller's list holds), NULL with an exception set. */
static PyObject *tighter(PyObject *best, PyObject *constraint) {
    if (constraint == Py_None) return best;
    PyObject *limit = get(constraint, &LIMIT);
    if (!limit) return NULL;
    int lt = best == Py_None ? 1 : less(limit, best);
    Py_DECREF(limit); /* still held by the constraint */
    if (lt < 0) return NULL;
    return lt ? limit : best;
}


static int same_length(Py_ssize_t n, PyObject **lists, int count) {
    for (int i = 0; i < count; i++)
        if (PyList_GET_SIZE(lists[i]) != n) {
            PyErr_SetString(PyExc_ValueError, "columns of different lengths");
            return 0;
        }
    return 1;
}

/* A position out of ``list`` at ``i``, checked against n: -1 with an exception set when outside. */
static Py_ssize_t position_at(PyObject *list, Py_ssize_t i, Py_ssize_t n) {
    Py_ssize_t pos = PyLong_AsSsize_t(PyList_GET_ITEM(list, i));
    if (pos == -1 && PyErr_Occurred()) return -1;
    if (pos < 0 || pos >= n) {
        PyErr_SetString(PyExc_IndexError, "a position outside the tree");
        return -1;
    }
    return pos;
}

static PyObject *top_down(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *inner, *parent, *cons, *net, *gen, *reading_of, *rules, *order, *root_tight, *root_gen;
    if (!PyArg_ParseTuple(args, "O!O!O!O!O!O!O!O!OO", &PyList_Type, &inner, &PyList_Type, &parent, &PyList_Type, &cons,
                          &PyList_Type, &net, &PyList_Type, &gen, &PyList_Type, &reading_of, &PyDict_Type, &rules,
                          &PyList_Type, &order, &root_tight, &root_gen))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(parent), k = PyList_GET_SIZE(inner);
    PyObject *columns[] = {cons, net, gen, reading_of, order};
    if (!same_length(n, columns, 5)) return NULL;
    int any_rules = PyDict_GET_SIZE(rules) > 0;
    int root_gen_checked = PyObject_IsTrue(root_gen);
    if (root_gen_checked < 0) return NULL;
    PyObject *tight = filled(n, Py_None), *meters = filled(n, Py_False), *gen_checked = filled(n, Py_False);
    if (!tight || !meters || !gen_checked) goto fail;
    for (Py_ssize_t i = 0; i < k; i++) {
        Py_ssize_t pos = position_at(inner, i, n);
        if (pos < 0) goto fail;
        Py_ssize_t p = PyLong_AsSsize_t(PyList_GET_ITEM(parent, pos));
        if (p == -1 && PyErr_Occurred()) goto fail;
        if (p >= n) {
            PyErr_SetString(PyExc_IndexError, "a position outside the tree");
            goto fail;
        }
        PyObject *up_tight = p < 0 ? root_tight : PyList_GET_ITEM(tight, p);
        int up_metered = p < 0 ? 0 : PyList_GET_ITEM(meters, p) == Py_True;
        int up_gen = p < 0 ? root_gen_checked : PyList_GET_ITEM(gen_checked, p) == Py_True;
        PyObject *c = PyList_GET_ITEM(cons, pos), *m = PyList_GET_ITEM(net, pos);
        PyObject *best = tighter(up_tight, c);
        if (best) best = tighter(best, m);
        if (!best) goto fail;
        Py_INCREF(best);
        if (PyList_SetItem(tight, pos, best)) goto fail;
        int metered = up_metered || PyList_GET_ITEM(reading_of, pos) != Py_None;
        if (!metered && any_rules) {
            metered = PyDict_Contains(rules, PyList_GET_ITEM(order, pos));
            if (metered < 0) goto fail;
        }
        PyObject *flag = metered ? Py_True : Py_False;
        Py_INCREF(flag);
        if (PyList_SetItem(meters, pos, flag)) goto fail;
        flag = up_gen || m != Py_None || PyList_GET_ITEM(gen, pos) != Py_None ? Py_True : Py_False;
        Py_INCREF(flag);
        if (PyList_SetItem(gen_checked, pos, flag)) goto fail;
    }
    return Py_BuildValue("(NNN)", tight, meters, gen_checked);
fail:
    Py_XDECREF(tight);
    Py_XDECREF(meters);
    Py_XDECREF(gen_checked);
    return NULL;
}

/* The int at ``list[pos]`` as a 64-bit int: 0, 1 when beyond 64 bits, -1 with an exception set. */
static int int_at(PyObject *list, Py_ssize_t pos, long long *v) {
    int overflow = 0;
    *v = PyLong_AsLongLongAndOverflow(PyList_GET_ITEM(list, pos), &overflow);
    if (*v == -1 && PyErr_Occurred()) return -1;
    return overflow ? 1 : 0;
}

enum { BASE, CHILDREN, DRAW, ASKED, GENERATION, SEEN, SUMS };

static PyObject *subtree_sums(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *uncontrolled, *parent, *at_least, *less_draw, *base, *draw, *requested, *generation, *seen, *fallback,
        *gen_fallback;
    if (!PyArg_ParseTuple(args, "O!O!O!O!O!O!O!O!O!O!O!", &PyList_Type, &uncontrolled, &PyList_Type, &parent,
                          &PyList_Type, &at_least, &PyList_Type, &less_draw, &PyList_Type, &base, &PyList_Type, &draw,
                          &PyList_Type, &requested, &PyList_Type, &generation, &PyList_Type, &seen, &PyList_Type,
                          &fallback, &PyList_Type, &gen_fallback))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(parent), k = PyList_GET_SIZE(uncontrolled);
    PyObject *columns[] = {at_least, less_draw, base, draw, requested, generation, seen, fallback, gen_fallback};
    if (!same_length(n, columns, 9)) return NULL;
    /* Each column read into a 64-bit array at the uncontrolled positions, summed there, then written back:
     * nothing is written unless every sum fits. */
    PyObject *read_from[SUMS] = {NULL, NULL, draw, requested, generation, seen};
    long long *col[SUMS], *start[SUMS]; /* start: what each column held before the walk (only changed ints are made) */
    size_t columns_bytes = 2 * SUMS * sizeof(long long) * (size_t)n;
    int own = 0;
    char *mem = scratch(columns_bytes + sizeof(Py_ssize_t) * (size_t)k + 3 * (size_t)n, &own);
    PyObject *result = NULL;
    int handed_back = 0;
    long long root[4] = {0, 0, 0, 0}; /* base, generation, generation seen, requested */
    int root_fallback = 0, root_gen_fallback = 0;
    if (!mem) return NULL;
    for (int c = 0; c < SUMS; c++) {
        col[c] = (long long *)mem + (size_t)c * (size_t)n;
        start[c] = (long long *)mem + (size_t)(SUMS + c) * (size_t)n;
    }
    Py_ssize_t *at = (Py_ssize_t *)(mem + columns_bytes);
    char *flags = (char *)(at + k); /* fallback, generation fallback, uncontrolled; only the last is read before
                                       it is written */
    memset(flags + 2 * n, 0, (size_t)n);
    char *fb = flags, *gfb = flags + n, *mine = flags + 2 * n;
    for (Py_ssize_t i = 0; i < k; i++) {
        Py_ssize_t pos = position_at(uncontrolled, i, n);
        if (pos < 0) goto done;
        at[i] = pos;
        mine[pos] = 1;
        col[BASE][pos] = col[CHILDREN][pos] = 0;
        for (int c = DRAW; c < SUMS; c++) {
            int rc = int_at(read_from[c], pos, &col[c][pos]);
            if (rc) {
                handed_back = rc > 0;
                goto done;
            }
            start[c][pos] = col[c][pos];
        }
        int f = PyObject_IsTrue(PyList_GET_ITEM(fallback, pos));
        int g = PyObject_IsTrue(PyList_GET_ITEM(gen_fallback, pos));
        if (f < 0 || g < 0) goto done;
        fb[pos] = (char)f;
        gfb[pos] = (char)g;
    }
    for (Py_ssize_t i = k - 1; i >= 0; i--) {
        Py_ssize_t pos = at[i];
        long long own = col[CHILDREN][pos], v;
        PyObject *x = PyList_GET_ITEM(at_least, pos);
        if (x != Py_None) {
            int rc = int_at(at_least, pos, &v);
            if (rc) {
                handed_back = rc > 0;
                goto done;
            }
            if (v > own) own = v;
        }
        x = PyList_GET_ITEM(less_draw, pos);
        if (x != Py_None) {
            int rc = int_at(less_draw, pos, &v);
            if (rc || __builtin_sub_overflow(v, col[DRAW][pos], &v)) {
                handed_back = rc >= 0;
                goto done;
            }
            if (v > own) own = v;
        }
        col[BASE][pos] = own;
        Py_ssize_t p = PyLong_AsSsize_t(PyList_GET_ITEM(parent, pos));
        if (p == -1 && PyErr_Occurred()) goto done;
        if (p >= n || (p >= 0 && !mine[p])) { /* a parent that is not summed here: left to Python */
            handed_back = 1;
            goto done;
        }
        long long *into[4];
        if (p >= 0) {
            into[0] = &col[CHILDREN][p], into[1] = &col[GENERATION][p], into[2] = &col[SEEN][p];
            into[3] = &col[ASKED][p];
            if (__builtin_add_overflow(col[DRAW][p], col[DRAW][pos], &col[DRAW][p])) {
                handed_back = 1;
                goto done;
            }
            fb[p] |= fb[pos];
            gfb[p] |= gfb[pos];
        } else {
            into[0] = &root[0], into[1] = &root[1], into[2] = &root[2], into[3] = &root[3];
            root_fallback |= fb[pos];
            root_gen_fallback |= gfb[pos];
        }
        if (__builtin_add_overflow(*into[0], own, into[0]) ||
            __builtin_add_overflow(*into[1], col[GENERATION][pos], into[1]) ||
            __builtin_add_overflow(*into[2], col[SEEN][pos], into[2]) ||
            __builtin_add_overflow(*into[3], col[ASKED][pos], into[3])) {
            handed_back = 1;
            goto done;
        }
    }
    /* Every sum fits: the root's values first (nothing is written if they cannot be made), then the columns. */
    result = Py_BuildValue("(LLLLNN)", root[0], root[1], root[2], root[3], PyBool_FromLong(root_fallback),
                           PyBool_FromLong(root_gen_fallback));
    if (!result) goto done;
    PyObject *write_to[SUMS] = {base, NULL, draw, requested, generation, seen};
    for (Py_ssize_t i = 0; i < k; i++) {
        Py_ssize_t pos = at[i];
        for (int c = 0; c < SUMS; c++) {
            if (!write_to[c] || (c != BASE && col[c][pos] == start[c][pos])) continue;
            PyObject *v = PyLong_FromLongLong(col[c][pos]);
            if (!v || PyList_SetItem(write_to[c], pos, v)) {
                Py_CLEAR(result);
                goto done;
            }
        }
        PyObject *f = fb[pos] ? Py_True : Py_False, *g = gfb[pos] ? Py_True : Py_False;
        Py_INCREF(f);
        Py_INCREF(g);
        if (PyList_SetItem(fallback, pos, f) || PyList_SetItem(gen_fallback, pos, g)) {
            Py_CLEAR(result);
            goto done;
        }
    }
done:
    scratch_done(mem, own);
    if (handed_back) {
        Py_XDECREF(result);
        Py_RETURN_NONE;
    }
    return result;
}

/* The limit of ``constraint`` as a 64-bit int: as int_at. */
static int limit_of(PyObject *constraint, long long *v) {
    PyObject *limit = get(constraint, &LIMIT);
    if (!limit) return -1;
    int overflow = 0;
    *v = PyLong_AsLongLongAndOverflow(limit, &overflow);
    Py_DECREF(limit);
    if (*v == -1 && PyErr_Occurred()) return -1;
    return overflow ? 1 : 0;
}

/* Appends (node_id, constraint, demand, code, fallback) to ``found``: 0, or -1 with an exception set. */
static int add_breach(PyObject *found, PyObject *node_id, PyObject *constraint, long long demand, PyObject *code,
                      PyObject *fallback) {
    PyObject *row = PyTuple_New(5), *watts = PyLong_FromLongLong(demand);
    if (!row || !watts) {
        Py_XDECREF(row);
        Py_XDECREF(watts);
        return -1;
    }
    PyObject *items[5] = {node_id, constraint, watts, code, fallback};
    for (int i = 0; i < 5; i++) {
        if (i != 2) Py_INCREF(items[i]); /* the demand's int is new: the tuple takes it */
        PyTuple_SET_ITEM(row, i, items[i]);
    }
    int rc = PyList_Append(found, row);
    Py_DECREF(row);
    return rc;
}

static PyObject *breaches(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *positions, *cons, *gen, *net, *base, *requested, *generation, *seen, *controllable, *fallback,
        *gen_fallback, *order, *node_cap, *ancestor;
    if (!PyArg_ParseTuple(args, "OO!O!O!O!O!O!O!O!O!O!O!OO", &positions, &PyList_Type, &cons, &PyList_Type, &gen,
                          &PyList_Type, &net, &PyList_Type, &base, &PyList_Type, &requested, &PyList_Type, &generation,
                          &PyList_Type, &seen, &PyList_Type, &controllable, &PyList_Type, &fallback, &PyList_Type,
                          &gen_fallback, &PyList_Type, &order, &node_cap, &ancestor))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(order);
    PyObject *columns[] = {cons, gen, net, base, requested, generation, seen, controllable, fallback, gen_fallback};
    if (!same_length(n, columns, 10)) return NULL;
    PyObject *fast = PySequence_Fast(positions, "positions: expected a sequence");
    if (!fast) return NULL;
    PyObject *found = PyList_New(0);
    int handed_back = 0;
    if (!found) goto fail;
    Py_ssize_t k = PySequence_Fast_GET_SIZE(fast);
    PyObject **items = PySequence_Fast_ITEMS(fast);
    for (Py_ssize_t i = 0; i < k; i++) {
        Py_ssize_t pos = PyLong_AsSsize_t(items[i]);
        if (pos == -1 && PyErr_Occurred()) goto fail;
        if (pos < 0 || pos >= n) {
            PyErr_SetString(PyExc_IndexError, "a position outside the tree");
            goto fail;
        }
        PyObject *c = PyList_GET_ITEM(cons, pos), *g = PyList_GET_ITEM(gen, pos), *m = PyList_GET_ITEM(net, pos);
        if (c == Py_None && g == Py_None && m == Py_None) continue;
        long long b, r, limit, total, produced, v;
        int rc = int_at(base, pos, &b);
        if (!rc) rc = int_at(requested, pos, &r);
        if (rc) goto failed_read;
        if (__builtin_add_overflow(b, r, &total)) goto beyond;
        PyObject *node_id = PyList_GET_ITEM(order, pos);
        int mine = -1; /* whether the node's own base (not an ancestor's share) breaks the cap: read once */
        if (c != Py_None) {
            if ((rc = limit_of(c, &limit))) goto failed_read;
            if (total > limit) {
                mine = PyObject_IsTrue(PyList_GET_ITEM(controllable, pos));
                if (mine < 0) goto fail;
                PyObject *code = mine || b > limit ? node_cap : ancestor;
                if (add_breach(found, node_id, c, total, code, PyList_GET_ITEM(fallback, pos))) goto fail;
            }
        }
        if (g != Py_None) {
            if ((rc = limit_of(g, &limit)) || (rc = int_at(seen, pos, &v))) goto failed_read;
            if (v > limit && add_breach(found, node_id, g, v, node_cap, PyList_GET_ITEM(gen_fallback, pos))) goto fail;
        }
        if (m != Py_None) {
            if ((rc = limit_of(m, &limit)) || (rc = int_at(generation, pos, &produced))) goto failed_read;
            long long net_total, own;
            if (__builtin_sub_overflow(total, produced, &net_total) || __builtin_sub_overflow(b, produced, &own))
                goto beyond;
            if (net_total > limit) {
                if (mine < 0) mine = PyObject_IsTrue(PyList_GET_ITEM(controllable, pos));
                if (mine < 0) goto fail;
                PyObject *code = mine || own > limit ? node_cap : ancestor;
                if (add_breach(found, node_id, m, net_total, code, PyList_GET_ITEM(fallback, pos))) goto fail;
            }
        }
        continue;
    failed_read:
        if (rc < 0) goto fail;
    beyond:
        handed_back = 1;
        goto fail;
    }
    Py_DECREF(fast);
    return found;
fail:
    Py_DECREF(fast);
    Py_XDECREF(found);
    if (handed_back) Py_RETURN_NONE;
    return NULL;
}

static PyMethodDef methods[] = {
    {"placed", placed, METH_VARARGS,
     "placed(records, position, n) -> list | None: the records by the position of their node_id; None when a"
     " record's node is not in position or two records share a node."},
    {"placed_again", placed_again, METH_VARARGS,
     "placed_again(records, position, order, hint) -> (list, hint) | None: as placed, each record looked for first at"
     " its position in hint (int32 positions from an earlier call, or None); hint: this call's positions."},
    {"request_columns", request_columns, METH_VARARGS,
     "request_columns(wish_at, positions, id_rank, next_of) -> six lists | None: the allocation's request columns of"
     " the wishes at the positions; None when a number is beyond 64 bits."},
    {"connector_pass", connector_pass, METH_VARARGS,
     "connector_pass(at, wish_of, reading_of, parent, meters, earliest, latest, requested, draw, id_rank, next_of) ->"
     " (wished, fallen, packed, requested_total) | None: the physical view's pass over the controllable connectors (see"
     " physical_view); None, with nothing written, when a number is beyond 64 bits or a connector has no parent."},
    {"top_down", top_down, METH_VARARGS,
     "top_down(inner, parent, cons, net, gen, reading_of, rules, order, root_tight, root_gen_checked) -> (tight,"
     " meters, gen_checked): the physical view's walk down the nodes other than connectors (see physical_view)."},
    {"breaches", breaches, METH_VARARGS,
     "breaches(positions, cons, gen, net, base, requested, generation, generation_seen, controllable, fallback_used,"
     " generation_fallback, order, node_cap, ancestor) -> list | None: the caps broken at the positions, as"
     " (node_id, constraint, demand, code, fallback); None when a number is beyond 64 bits."},
    {"subtree_sums", subtree_sums, METH_VARARGS,
     "subtree_sums(uncontrolled, parent, at_least, less_draw, base, draw, requested, generation, generation_seen,"
     " fallback_used, generation_fallback) -> root sums | None: the physical view's walk up the uncontrolled nodes;"
     " None, with nothing written, when a number is beyond 64 bits or a parent is not among them."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_columns",
    .m_doc = "The cycle's inputs as columns by tree position, compiled.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__columns(void) {
    for (size_t i = 0; i < sizeof ATTRIBUTES / sizeof ATTRIBUTES[0]; i++) {
        ATTRIBUTES[i]->name = PyUnicode_InternFromString(ATTRIBUTES[i]->text);
        if (!ATTRIBUTES[i]->name) return NULL;
    }
    return PyModule_Create(&module);
}
