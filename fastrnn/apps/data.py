"""Loaders for the applications' data, with errors that name the file: plain UTF-8 text and its
character vocabulary, and the IMDB reviews (aclImdb folder or archive) with a word vocabulary."""
import collections
import os
import re
import tarfile

UNK = "\ufffd"  # the reserved unknown symbol of a character vocabulary, always index 0


def read_text(path):
    """The whole of a UTF-8 text file; ValueError naming the file when it is empty or not UTF-8."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ValueError(f"{path}: cannot read ({e.strerror})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text (byte {e.start}: {raw[e.start:e.start + 1]!r})") from None
    if not text:
        raise ValueError(f"{path}: the file is empty")
    return text


class CharVocab:
    """Characters <-> indices; index 0 is the unknown symbol, which unseen characters map to."""

    def __init__(self, chars):
        self.chars = [UNK] + sorted(set(chars) - {UNK})
        self.index = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_list(cls, chars):
        v = cls.__new__(cls)
        v.chars, v.index = list(chars), {c: i for i, c in enumerate(chars)}
        return v

    def __len__(self):
        return len(self.chars)

    def encode(self, text):
        return [self.index.get(c, 0) for c in text]

    def decode(self, ids):
        return "".join(self.chars[i] for i in ids)


def split_train_val(ids, val_fraction=0.1):
    """The first 90% to train on, the last 10% to validate on."""
    cut = int(len(ids) * (1 - val_fraction))
    if cut < 2 or len(ids) - cut < 2:
        raise ValueError(f"text too short to split ({len(ids)} characters)")
    return ids[:cut], ids[cut:]


_TOKEN = re.compile(r"[a-z0-9']+")


def tokenize(text):
    return _TOKEN.findall(text.lower().replace("<br />", " "))


def _label(name):
    """'aclImdb/train/pos/123_9.txt' -> ('train', 1); None for files outside pos/neg."""
    parts = name.replace("\\", "/").split("/")
    if len(parts) >= 3 and parts[-2] in ("pos", "neg") and parts[-3] in ("train", "test") \
            and parts[-1].endswith(".txt"):
        return parts[-3], int(parts[-2] == "pos")
    return None


def _members(path):
    """(name, bytes) of every file of an aclImdb archive (.tar.gz) or folder."""
    if os.path.isdir(path):
        for root, _, files in os.walk(path):
            for f in sorted(files):
                full = os.path.join(root, f)
                with open(full, "rb") as fh:
                    yield full, fh.read()
    elif tarfile.is_tarfile(path):
        with tarfile.open(path) as tar:
            for m in tar:
                if m.isfile():
                    yield m.name, tar.extractfile(m).read()
    else:
        raise ValueError(f"{path}: neither an aclImdb folder nor a tar archive")


def load_imdb(path):
    """{'train': [(text, label)], 'test': [...]} from aclImdb's train|test/pos|neg/*.txt."""
    if not os.path.exists(path):
        raise ValueError(f"{path}: no such file or folder")
    splits = {"train": [], "test": []}
    for name, raw in _members(path):
        where = _label(name)
        if where is None:
            continue
        try:
            splits[where[0]].append((raw.decode("utf-8"), where[1]))
        except UnicodeDecodeError:
            raise ValueError(f"{name}: not UTF-8 text") from None
    for split, items in splits.items():
        labels = {y for _, y in items}
        if labels != {0, 1}:
            raise ValueError(f"{path}: the {split} split has no labelled reviews in "
                             f"{split}/pos and {split}/neg" if not items else
                             f"{path}: the {split} split has only one label")
    return splits


class WordVocab:
    """The most frequent words; index 0 pads, index 1 is the unknown word."""

    def __init__(self, texts, size=10000):
        counts = collections.Counter(w for t in texts for w in tokenize(t))
        self.words = ["<pad>", "<unk>"] + [w for w, _ in counts.most_common(size - 2)]
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self):
        return len(self.words)

    def encode(self, text, max_len):
        """The last max_len token ids, left-padded with 0 (as Keras' pad_sequences does)."""
        ids = [self.index.get(w, 1) for w in tokenize(text)][-max_len:]
        return [0] * (max_len - len(ids)) + ids
