"""The cells' C ABI, written from their descriptions (fastrnn/cells.py) when CMake configures.

    python kernels/abi.py OUT_DIR

writes into OUT_DIR
  fastrnn_cells.h   every cell kernel's declaration — float32 with each array's shape, float64,
                    the bfloat16 forwards, the CUDA library's — and FASTRNN_CELL_KERNELS, the
                    names kernels/cpu/variants.c binds to the best CPU variant (installed beside
                    fastrnn.h);
  entries_<cell>.h  included by the C file that implements the cell: the structs its
                    implementation takes (<cell>_forward_args, <cell>_forward16_args,
                    <cell>_backward_args) and the entry points, which check the sizes and every
                    pointer that may not be NULL, set their pass's state and gate slots (forward:
                    S = T + 1, Sg = T; _infer: 2, 1) and call <cell>_forward, <cell>_forward16 or
                    <cell>_backward, defined by that file.

Standard library only: it runs in the build's isolated environment, before torch is there.
"""
import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
C_NAME = {"w_ih": "W_ih", "w_hh": "W_hh", "w_hr": "W_hr"}  # matrices as the math writes them


def load_cells():
    """fastrnn/cells.py alone (importing the package would need torch)."""
    path = os.path.join(HERE, "..", "fastrnn", "cells.py")
    spec = importlib.util.spec_from_file_location("fastrnn_cell_descriptions", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # (dataclasses look their module up)
    spec.loader.exec_module(module)
    return module


class Arg:
    """One argument of a kernel: its C name and type, shape, note, and whether it may be NULL."""

    def __init__(self, name, ctype, shape="", note="", nullable=False):
        self.name, self.ctype, self.shape, self.note = name, ctype, shape, note
        self.nullable = nullable


def _shape(cell, shape):
    """"T,B,G" -> "[T,B,4H]" for an LSTM (G: gates·H, R: H without a projection)."""
    g = "H" if cell.gates == 1 else f"{cell.gates}H"
    return "[" + ",".join({"G": g, "R": "R" if cell.projected else "H"}.get(d, d)
                          for d in shape.split(",")) + "]"


def kernel(cells, cell, kind, cuda=False):
    """The arguments of a cell's kernel `kind` (forward, forward_infer, backward, forward_x,
    forward_x_infer, forward_x_bf16, forward_x_infer_bf16), in their C order (the CUDA
    library's: then `stream`)."""
    sizes, arrays = cell.kernel_args(kind)
    optional = {a.rstrip("?") for a in (*cell.inputs, *cell.params) if a.endswith("?")}
    if kind.startswith("forward_x"):  # biases and initial states may be NULL there
        optional |= set(cell.x_biases) | {s + "0" for s in cell.states}
    shapes = dict(cells.SHAPES, **dict(cell.outputs()), **dict(cell.grads))
    notes = dict(cell.notes)
    bf16, saved = kind.endswith("bf16"), {n for n, _ in cell.saved}
    # the inputs (const) end at lengths in a backward, before y in a forward
    results = arrays.index("lengths") + 1 if kind == "backward" else arrays.index("y")
    out = [Arg(s, "int64_t") for s in sizes]
    for k, a in enumerate(arrays):
        if a == "lengths":
            ctype = "const int64_t *"
        else:
            base = "uint16_t" if bf16 and a not in saved else "real"
            ctype = ("const " if k < results else "") + base + " *"
        out.append(Arg(C_NAME.get(a, a), ctype, _shape(cell, shapes[a]), notes.get(a, ""),
                       a in optional or a == "dh0" and not cuda))  # (∂L/∂h0 not wanted)
    return out


def _params(args, real):
    return ", ".join(f"{a.ctype.replace('real', real)}{'' if a.ctype.endswith('*') else ' '}"
                     f"{a.name}" for a in args)


def _annotated(name, args, real):
    """A declaration with one array a line and its shape (NULL-able ones say so)."""
    sizes = [a for a in args if a.ctype == "int64_t"]
    arrays = [a for a in args if a.ctype != "int64_t"]
    lines = [f"int {name}({_params(sizes, real)},"]
    for k, a in enumerate(arrays):
        text = f"    {a.ctype.replace('real', real)}{a.name}{');' if k == len(arrays) - 1 else ','}"
        lines.append(f"{text:<34}/* {_note(a)} */")
    return "\n".join(lines) + "\n"


def _wrap(text, indent="    ", sep=", ", width=100):
    """text in lines of at most `width`, broken after a `sep`, the later lines indented."""
    lead = text[:len(text) - len(text.lstrip(" "))]
    parts, lines, line = text[len(lead):].split(sep), [], lead
    for k, p in enumerate(parts):
        p += sep.rstrip() if k < len(parts) - 1 else ""
        if line and len(line) + 1 + len(p) > width:
            lines.append(line)
            line = indent + p
        else:
            line = f"{line} {p}" if line.strip() else line + p
    return "\n".join(lines + [line]) + "\n"


def _comment(text):
    return _wrap("/* " + text + " */", indent=" * ", sep=" ")


def header(cells):
    """fastrnn_cells.h."""
    out = [_comment("fastrnn — the cells' kernels, written by kernels/abi.py from their "
                    "descriptions (fastrnn/cells.py) when the library is built: edit those, not "
                    "this file. The conventions (shapes, passes, lengths, NULL states, errors) "
                    "are fastrnn.h's.") +
           "#ifndef FASTRNN_CELLS_H\n#define FASTRNN_CELLS_H\n#include \"fastrnn.h\"\n"
           "#ifdef __cplusplus\nextern \"C\" {\n#endif\n"]
    names, bf16_names, f64, cuda = [], [], [], []
    for cell in cells.CELLS.values():
        out.append("\n" + _comment(cell.doc))
        for k, stem in enumerate(dict.fromkeys(cell.stems or (cell.name,))):
            for kind in cell.kinds():
                args, name = kernel(cells, cell, kind), f"fastrnn_{stem}_{kind}"
                (bf16_names if kind.endswith("bf16") else names).append(name)
                full = k == 0 and "infer" not in kind
                out.append(_annotated(name + "_f32", args, "float") if full else
                           _wrap(f"int {name}_f32({_params(args, 'float')});"))
                if not kind.endswith("bf16"):
                    f64.append(_wrap(f"int {name}_f64({_params(args, 'double')});"))
                if cell.cuda and kind in cells.CUDA_KINDS:
                    for t, real in (("f32", "float"), ("f64", "double")):
                        cuda.append(_wrap(f"int {name}_{t}_cuda({_params(args, real)}, "
                                          "void *stream);"))
    out.append("\n/* The same in double. */\n" + "".join(f64))
    out.append("\n/* The CUDA library's (device pointers; `stream` the caller's cudaStream_t, "
               "NULL: the default). */\n" + "".join(cuda))
    out.append("\n/* Every CPU kernel's name without its element type: X(name). */\n")
    for macro, listed in (("FASTRNN_CELL_KERNELS", names),
                          ("FASTRNN_CELL_KERNELS_BF16", bf16_names)):
        out.append(f"#define {macro}(X) \\\n  " + " \\\n  ".join(f"X({n})" for n in listed) + "\n")
    out.append("\n#ifdef __cplusplus\n}\n#endif\n#endif /* FASTRNN_CELLS_H */\n")
    return "".join(out)


def _note(a):
    return " ".join(p for p in (a.shape, a.note, "or NULL" if a.nullable else "") if p)


def _struct(name, sizes, arrays, comment):
    body = "".join(f"  {a.ctype}{a.name};{'':<{max(1, 28 - len(a.ctype + a.name))}}"
                   f"/* {_note(a)} */\n" for a in arrays)
    return (_comment(comment) + "typedef struct {\n"
            "  const char *fn;  /* the entry point's name */\n"
            f"  int64_t {', '.join(sizes)};\n{body}}} {name};\n")


def entries(cells, cell, cuda=False):
    """entries_<cell>.h (the CUDA library's: entries_<cell>_cuda.h)."""
    flag = [Arg(cell.flag, "int ", "0 or 1")] if cell.flag else []
    stream = [Arg("stream", "void *", "the caller's cudaStream_t")] if cuda else []
    fwd = kernel(cells, cell, "forward", cuda)
    groups = {"forward": (fwd, ("forward", "forward_infer"))}
    if cell.x_biases is not None and not cuda:  # one struct: x_in NULL means G_x inside
        fx = kernel(cells, cell, "forward_x")
        extra = [a for a in fx if a.name not in {b.name for b in fwd}]
        sizes = [a for a in fwd if a.ctype == "int64_t"]
        sizes.insert(2, next(a for a in extra if a.name == "I"))
        arrays = [a for a in fwd if a.ctype != "int64_t"]
        groups["forward"] = ([*sizes, *arrays[:1], *[a for a in extra if a.ctype != "int64_t"],
                              *arrays[1:]], ("forward", "forward_infer", "forward_x",
                                             "forward_x_infer"))
    if cell.bf16 and not cuda:
        groups["forward16"] = (kernel(cells, cell, "forward_x_bf16"),
                               ("forward_x_bf16", "forward_x_infer_bf16"))
    groups["backward"] = (kernel(cells, cell, "backward", cuda), ("backward",))
    out = [_comment(f"The {'CUDA ' if cuda else ''}entry points of the {cell.name} cell, written "
                    "by kernels/abi.py from its description (fastrnn/cells.py): edit that, not "
                    "this file.")]
    for group, (fields, kinds) in groups.items():
        struct, impl = f"{cell.name}_{group}_args", f"{cell.name}_{group}"
        slots = ["S", "Sg"] if group != "backward" else []  # state and gate slots
        sizes = [a.name for a in fields if a.ctype == "int64_t"] + slots
        arrays = [a for a in fields if a.ctype != "int64_t"]
        what = f"what the {cell.name} cell's {', '.join(kinds)} kernels take"
        if "forward_x" in kinds:
            what += " (x_in NULL: G_x inside, from x, W_ih and the biases)"
        body = _struct(struct, sizes, flag + arrays + stream, what)
        if group == "forward16":
            body = "#if !FASTRNN_F64\n" + body
        out.append(body + f"static int {impl}(const {struct} *a);\n")
        for k, stem in enumerate(dict.fromkeys(cell.stems or (cell.name,))):
            for kind in kinds:
                args = kernel(cells, cell, kind, cuda) + stream
                out.append(_entry(cell, stem, kind, args, struct, impl, k, cuda))
        if group == "forward16":
            out.append("#endif\n")
    return "".join(out)


def _entry(cell, stem, kind, args, struct, impl, flag_value, cuda):
    """One entry point: checks, its pass's slots, the struct (set member by member, which C and
    CUDA's C++ both take), the cell's implementation."""
    checked = ", ".join(a.name for a in args
                        if a.ctype != "int64_t" and not a.nullable and a.name != "stream")
    slots = {"backward": []}.get(kind, ["S = 2", "Sg = 1"] if "infer" in kind else
                                 ["S = T + 1", "Sg = T"])
    sets = ["fn = __func__", *slots, *(f"{a.name} = {a.name}" for a in args)]
    sets += [f"{cell.flag} = {flag_value}"] if cell.flag else []
    r_check = ("  if (!e && R < 1) e = fr_fail(__func__, \"expected R >= 1, got R=%lld\", "
               "(long long)R);\n" if cell.projected else "")
    name = f"SFX_CUDA(fastrnn_{stem}_{kind})" if cuda else f"SFXV(fastrnn_{stem}_{kind})"
    return (_wrap(f"int {name}({_params(args, 'real')}) {{", indent="      ")
            + _wrap(f"  FR_CHECK(e, T, B, H, {cell.gates}, lengths, {0 if cuda else 1}, "
                    f"{checked});", indent="      ")
            + f"{r_check}  if (e) return e;\n  {struct} a = {{0}};\n"
            + _wrap("  " + " ".join(f"a.{x};" for x in sets), indent="  ", sep="; ")
            + f"  return {impl}(&a);\n}}\n")


def main(out_dir):
    cells = load_cells()
    os.makedirs(out_dir, exist_ok=True)
    files = {"fastrnn_cells.h": header(cells)}
    files.update({f"entries_{c.name}.h": entries(cells, c) for c in cells.CELLS.values()})
    files.update({f"entries_{c.name}_cuda.h": entries(cells, c, cuda=True)
                  for c in cells.CELLS.values() if c.cuda})
    for name, text in files.items():
        path = os.path.join(out_dir, name)
        if not os.path.exists(path) or open(path, encoding="utf-8").read() != text:
            with open(path, "w", encoding="utf-8") as f:  # (unchanged files keep their time)
                f.write(text)


if __name__ == "__main__":
    main(sys.argv[1])
