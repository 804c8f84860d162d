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
 *   request_columns(wish_at, positions, id_rank, next_of) -> (node, requested_watts, min_watts, weight,
 *                                                             priority, rank) | None
 *       for each position p: next_of[p] (p + 1), the fields of wish_at[p] clamped as the cycle clamps
 *       them (requested and minimum at 0, weight at 1), and id_rank[p]. The ints are the records' own
 *       where they need no clamping (making new ones was most of the cost).
 *   connector_pass(at, wish_of, reading_of, parent, meters, earliest, latest, demand_at, requested, draw)
 *       -> (wished, fallen) | None
 *       the physical view's first pass, over the controllable connectors at ``at`` (see physical_view):
 *       each one's wish into demand_at, its positive request into requested and its fresh positive draw
 *       (under a metered parent) into draw, both added to its parent's; ``wished``: the positions with a
 *       wish, ``fallen``: those whose reading under a metered parent is not fresh (Python resolves them).
 *       None, with nothing written, when a number is beyond 64 bits or a connector has no parent.
 *
 * Pure: no I/O, no global state beyond the interned attribute names; the GIL is held throughout.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>

static PyObject *NODE_ID, *REQUESTED, *MINIMUM, *WEIGHT, *PRIORITY, *VALID, *OBSERVED_AT, *MEASURED;

static PyObject *placed(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *records, *position;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "OO!n", &records, &PyDict_Type, &position, &n)) return NULL;
    if (n < 0) {
        PyErr_SetString(PyExc_ValueError, "n: a number of nodes");
        return NULL;
    }
    PyObject *fast = PySequence_Fast(records, "records: expected a sequence");
    if (!fast) return NULL;
    PyObject *out = PyList_New(n);
    if (!out) {
        Py_DECREF(fast);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_INCREF(Py_None);
        PyList_SET_ITEM(out, i, Py_None);
    }
    Py_ssize_t m = PySequence_Fast_GET_SIZE(fast);
    PyObject **items = PySequence_Fast_ITEMS(fast);
    for (Py_ssize_t r = 0; r < m; r++) {
        PyObject *node_id = PyObject_GetAttr(items[r], NODE_ID);
        if (!node_id) goto fail;
        PyObject *at = PyDict_GetItemWithError(position, node_id); /* borrowed */
        Py_DECREF(node_id);
        if (!at) {
            if (PyErr_Occurred()) goto fail;
            goto plain_case_only; /* a node not in the tree */
        }
        Py_ssize_t pos = PyLong_AsSsize_t(at);
        if (pos == -1 && PyErr_Occurred()) goto fail;
        if (pos < 0 || pos >= n) {
            PyErr_SetString(PyExc_IndexError, "a position outside the tree");
            goto fail;
        }
        if (PyList_GET_ITEM(out, pos) != Py_None) goto plain_case_only; /* two records for one node */
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

/* The attribute ``name`` of ``obj``, an int, raised to ``floor`` if below it: a new reference (the
 * attribute's own int when it is not raised), NULL with an exception set, or Py_None (a new reference)
 * when the int is beyond 64 bits. */
static PyObject *field(PyObject *obj, PyObject *name, long long floor) {
    PyObject *x = PyObject_GetAttr(obj, name);
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
        return PyLong_FromLongLong(floor);
    }
    return x;
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
    PyObject *names[4] = {REQUESTED, MINIMUM, WEIGHT, PRIORITY};
    const long long floor[4] = {0, 0, 1, LLONG_MIN}; /* priority as it is */
    for (Py_ssize_t r = 0; r < k; r++) {
        Py_ssize_t pos = PyLong_AsSsize_t(PyList_GET_ITEM(positions, r));
        if (pos == -1 && PyErr_Occurred()) goto fail;
        if (pos < 0 || pos >= n) {
            PyErr_SetString(PyExc_IndexError, "a position outside the tree");
            goto fail;
        }
        PyObject *wish = PyList_GET_ITEM(wish_at, pos);
        for (int f = 0; f < 4; f++) {
            PyObject *v = field(wish, names[f], floor[f]);
            if (!v) goto fail;
            if (v == Py_None) {
                Py_DECREF(v);
                goto plain_case_only;
            }
            PyList_SET_ITEM(cols[f + 1], r, v);
        }
        PyObject *node = PyList_GET_ITEM(next_of, pos), *rank = PyList_GET_ITEM(id_rank, pos);
        Py_INCREF(node);
        Py_INCREF(rank);
        PyList_SET_ITEM(cols[0], r, node);
        PyList_SET_ITEM(cols[5], r, rank);
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
static int int_field(PyObject *obj, PyObject *name, long long *v, PyObject **obj_out) {
    PyObject *x = PyObject_GetAttr(obj, name);
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
static int take_positive(PyObject *record, PyObject *name, PyObject **kept, long long *parent_sum) {
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
    PyObject *at, *wish_of, *reading_of, *parent, *meters, *earliest, *latest, *demand_at, *requested, *draw;
    if (!PyArg_ParseTuple(args, "O!O!O!O!O!OOO!O!O!", &PyList_Type, &at, &PyList_Type, &wish_of, &PyList_Type,
                          &reading_of, &PyList_Type, &parent, &PyList_Type, &meters, &earliest, &latest, &PyList_Type,
                          &demand_at, &PyList_Type, &requested, &PyList_Type, &draw))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(parent), k = PyList_GET_SIZE(at);
    if (PyList_GET_SIZE(wish_of) != n || PyList_GET_SIZE(reading_of) != n || PyList_GET_SIZE(meters) != n ||
        PyList_GET_SIZE(demand_at) != n || PyList_GET_SIZE(requested) != n || PyList_GET_SIZE(draw) != n) {
        PyErr_SetString(PyExc_ValueError, "columns of different lengths");
        return NULL;
    }
    /* Read everything first, so that nothing is written when the Python pass has to answer instead. */
    PyObject **asked = calloc((size_t)(k ? k : 1), sizeof(PyObject *)); /* a positive request's int */
    PyObject **drawn = calloc((size_t)(k ? k : 1), sizeof(PyObject *)); /* a positive fresh draw's int */
    long long *asked_sum = calloc((size_t)(n ? n : 1), sizeof(long long));
    long long *drawn_sum = calloc((size_t)(n ? n : 1), sizeof(long long));
    PyObject *wished = PyList_New(0), *fallen = PyList_New(0), *result = NULL;
    int handed_back = 0;
    if (!asked || !drawn || !asked_sum || !drawn_sum) {
        PyErr_NoMemory();
        goto done;
    }
    if (!wished || !fallen) goto done;
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
            int rc = take_positive(wish, REQUESTED, &asked[i], &asked_sum[p]);
            if (rc) {
                handed_back = rc > 0;
                goto done;
            }
            if (PyList_Append(wished, pos_obj)) goto done;
        }
        PyObject *reading = PyList_GET_ITEM(reading_of, pos);
        if (reading == Py_None) continue;
        int metered = PyObject_IsTrue(PyList_GET_ITEM(meters, p));
        if (metered < 0) goto done;
        if (!metered) continue;
        /* fresh: valid and earliest <= observed_at <= latest (compared only when valid, as Python does) */
        PyObject *valid_obj = PyObject_GetAttr(reading, VALID);
        if (!valid_obj) goto done;
        int fresh = PyObject_IsTrue(valid_obj);
        Py_DECREF(valid_obj);
        if (fresh < 0) goto done;
        if (fresh) {
            PyObject *observed = PyObject_GetAttr(reading, OBSERVED_AT);
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
        int rc = take_positive(reading, MEASURED, &drawn[i], &drawn_sum[p]);
        if (rc) {
            handed_back = rc > 0;
            goto done;
        }
    }
    /* Then write: each connector's wish, request and draw at its position, the sums at its parent. */
    for (Py_ssize_t i = 0; i < k; i++) {
        Py_ssize_t pos = PyLong_AsSsize_t(PyList_GET_ITEM(at, i));
        PyObject *wish = PyList_GET_ITEM(wish_of, pos);
        if (wish != Py_None) {
            Py_INCREF(wish);
            if (PyList_SetItem(demand_at, pos, wish)) goto done;
        }
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
    result = PyTuple_Pack(2, wished, fallen);
done:
    if (asked)
        for (Py_ssize_t i = 0; i < k; i++) Py_XDECREF(asked[i]);
    if (drawn)
        for (Py_ssize_t i = 0; i < k; i++) Py_XDECREF(drawn[i]);
    free(asked);
    free(drawn);
    free(asked_sum);
    free(drawn_sum);
    Py_XDECREF(wished);
    Py_XDECREF(fallen);
    if (handed_back) Py_RETURN_NONE;
    return result;
}

static PyMethodDef methods[] = {
    {"placed", placed, METH_VARARGS,
     "placed(records, position, n) -> list | None: the records by the position of their node_id; None when a"
     " record's node is not in position or two records share a node."},
    {"request_columns", request_columns, METH_VARARGS,
     "request_columns(wish_at, positions, id_rank, next_of) -> six lists | None: the allocation's request columns of"
     " the wishes at the positions; None when a number is beyond 64 bits."},
    {"connector_pass", connector_pass, METH_VARARGS,
     "connector_pass(at, wish_of, reading_of, parent, meters, earliest, latest, demand_at, requested, draw) ->"
     " (wished, fallen) | None: the physical view's pass over the controllable connectors (see physical_view);"
     " None, with nothing written, when a number is beyond 64 bits or a connector has no parent."},
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
    NODE_ID = PyUnicode_InternFromString("node_id");
    REQUESTED = PyUnicode_InternFromString("requested_watts");
    MINIMUM = PyUnicode_InternFromString("min_watts");
    WEIGHT = PyUnicode_InternFromString("weight");
    PRIORITY = PyUnicode_InternFromString("priority");
    VALID = PyUnicode_InternFromString("valid");
    OBSERVED_AT = PyUnicode_InternFromString("observed_at");
    MEASURED = PyUnicode_InternFromString("measured_watts");
    if (!NODE_ID || !REQUESTED || !MINIMUM || !WEIGHT || !PRIORITY || !VALID || !OBSERVED_AT || !MEASURED) return NULL;
    return PyModule_Create(&module);
}
