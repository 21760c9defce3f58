"""The applications: loaders (and their errors), a tiny training run that must learn, checkpoint
round trip, generation determinism, frozen parts staying bitwise unchanged."""
import pathlib
import tarfile

import pytest
import torch

from fastrnn.apps import charlm, data, finetune, sentiment
from fastrnn.cli import main

SHARED = pathlib.Path(__file__).resolve().parents[2] / "shared" / "data"
TEXT = "the quick brown fox jumps over the lazy dog. " * 120
CONFIG = dict(charlm.DEFAULTS, embed=8, hidden=24, layers=2, dropout=0.0, seq_len=16, batch=4,
              lr=1e-2)


def test_read_text_errors_name_the_file(tmp_path):
    empty, latin = tmp_path / "empty.txt", tmp_path / "latin1.txt"
    empty.write_bytes(b"")
    latin.write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(ValueError, match="empty.txt: the file is empty"):
        data.read_text(empty)
    with pytest.raises(ValueError, match="latin1.txt: not UTF-8"):
        data.read_text(latin)
    with pytest.raises(ValueError, match="missing.txt: cannot read"):
        data.read_text(tmp_path / "missing.txt")


def test_char_vocab_maps_unseen_characters_to_unknown():
    v = data.CharVocab("abc")
    assert v.chars[0] == data.UNK and len(v) == 4
    assert v.encode("abz") == [1, 2, 0]
    assert v.decode(v.encode("cab")) == "cab"


def _imdb_fixture(root, label_dirs=("pos", "neg")):
    for split in ("train", "test"):
        for k, lab in enumerate(label_dirs):
            d = root / "aclImdb" / split / lab
            d.mkdir(parents=True)
            for i in range(3):
                (d / f"{i}_{7 if lab == 'pos' else 2}.txt").write_text(
                    ("great wonderful film " if lab == "pos" else "awful boring mess ") * (i + 1))
    return root / "aclImdb"


def test_imdb_loader_reads_folder_and_archive(tmp_path):
    folder = _imdb_fixture(tmp_path)
    splits = data.load_imdb(str(folder))
    assert len(splits["train"]) == 6 and {y for _, y in splits["test"]} == {0, 1}
    archive = tmp_path / "imdb.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname="aclImdb")
    assert sorted(data.load_imdb(str(archive))["train"]) == sorted(splits["train"])


def test_imdb_loader_errors(tmp_path):
    with pytest.raises(ValueError, match="the train split has no labelled reviews"):
        data.load_imdb(str(_imdb_fixture(tmp_path / "a", label_dirs=("unsup",))))
    bad = _imdb_fixture(tmp_path / "b")
    (bad / "test" / "pos" / "9_9.txt").write_bytes(b"\xff\xfe bad")
    with pytest.raises(ValueError, match="9_9.txt: not UTF-8"):
        data.load_imdb(str(bad))
    with pytest.raises(ValueError, match="nowhere: no such file"):
        data.load_imdb(str(tmp_path / "nowhere"))


def test_word_vocab_keeps_last_tokens_left_padded():
    v = data.WordVocab(["a b c", "a b", "a"], size=4)
    assert v.words == ["<pad>", "<unk>", "a", "b"]
    assert v.encode("c a b a", 3) == [2, 3, 2]
    assert v.encode("b", 3) == [0, 0, 3]


@pytest.mark.parametrize("impl", ["fastrnn", "torch"])
def test_tiny_char_lm_learns(impl):
    vocab, train_ids, val_ids = data.CharVocab(TEXT), *data.split_train_val(data.CharVocab(TEXT).encode(TEXT))
    model = charlm.build(CONFIG | {"impl": impl}, len(vocab))
    before = charlm.evaluate(model, val_ids, CONFIG["seq_len"])
    opt = torch.optim.Adam(model.parameters(), lr=CONFIG["lr"])
    hist = charlm.train(model, opt, train_ids, val_ids, CONFIG, epochs=3)
    assert hist["val"][-1][1] < before - 0.5


def test_checkpoint_round_trip_and_deterministic_generation(tmp_path):
    out = tmp_path / "run"
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(TEXT)
    assert main(["train-charlm", "--data", str(corpus), "--epochs", "1", "--hidden", "16",
                 "--embed", "8", "--seq-len", "16", "--batch", "4", "--out", str(out)]) == 0
    ckpt = torch.load(out / "checkpoint.pt", weights_only=True)
    assert ckpt["config"]["hidden"] == 16 and ckpt["vocab"][0] == data.UNK
    model, _, vocab = charlm.load(out / "checkpoint.pt")
    again, _, _ = charlm.load(out / "checkpoint.pt", impl="torch")
    x = torch.tensor(vocab.encode("the lazy"))[:, None]
    assert torch.allclose(model(x)[0], again(x)[0], atol=1e-5)
    a = charlm.generate(model, vocab, "the ", 40, 0.8, seed=3)
    assert a == charlm.generate(model, vocab, "the ", 40, 0.8, seed=3)
    assert a.startswith("the ") and len(a) == 44
    assert (out / "loss.png").stat().st_size > 1000
    assert main(["train-charlm", "--data", str(corpus), "--epochs", "2", "--resume",
                 str(out / "checkpoint.pt"), "--out", str(out)]) == 0
    assert torch.load(out / "checkpoint.pt", weights_only=True)["epoch"] == 2


def test_finetune_keeps_frozen_parts_bitwise(tmp_path):
    vocab = data.CharVocab(TEXT)
    model = charlm.build(CONFIG, len(vocab))
    with pytest.raises(ValueError, match="unknown part 'layer7'; valid parts: embedding, head, "
                                         "layer0, layer1"):
        finetune.freeze(model, ["layer7"])
    finetune.freeze(model, ["embedding", "layer0"])
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    assert set(frozen) == {"embedding.weight", "rnn.weight_ih_l0", "rnn.weight_hh_l0",
                           "rnn.bias_ih_l0", "rnn.bias_hh_l0"}
    trained = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    domain = "PACK MY BOX WITH FIVE DOZEN LIQUOR JUGS! " * 60   # unseen capitals -> unknown
    train_ids, val_ids = data.split_train_val(vocab.encode(domain))
    assert 0 in train_ids
    opt = finetune.trainable_optimizer(model, 1e-2)
    charlm.train(model, opt, train_ids, val_ids, CONFIG, epochs=1)
    for n, p in model.named_parameters():
        if n in frozen:
            assert torch.equal(p, frozen[n]), n
        else:
            assert not torch.equal(p, trained[n]), n


def test_finetune_command_reports_before_and_after(tmp_path, capsys):
    corpus, domain = tmp_path / "a.txt", tmp_path / "b.txt"
    corpus.write_text(TEXT)
    domain.write_text("a lazy dog sleeps; the fox waits. " * 80)
    main(["train-charlm", "--data", str(corpus), "--epochs", "1", "--hidden", "16", "--embed", "8",
          "--seq-len", "16", "--batch", "4", "--out", str(tmp_path / "pre")])
    assert main(["finetune", "--checkpoint", str(tmp_path / "pre" / "checkpoint.pt"), "--data",
                 str(domain), "--freeze", "embedding,layer0", "--epochs", "1", "--seq-len", "16",
                 "--batch", "4", "--out", str(tmp_path / "ft")]) == 0
    assert "before fine-tuning" in capsys.readouterr().out
    assert main(["finetune", "--checkpoint", str(tmp_path / "pre" / "checkpoint.pt"), "--data",
                 str(domain), "--freeze", "decoder", "--out", str(tmp_path / "ft2")]) == 1


def test_tiny_sentiment_run(tmp_path):
    folder = _imdb_fixture(tmp_path)
    config = sentiment.DEFAULTS | dict(vocab=50, embed=8, hidden=8, max_len=12, batch=4, epochs=2,
                                       lr=0.05)
    _, d = sentiment.load(str(folder), config)
    model = sentiment.build(config)
    records = sentiment.train(model, d, config)
    assert len(records) == 2 and records[-1]["train_loss"] < records[0]["train_loss"]
    assert records[-1]["test_accuracy"] == 1.0


@pytest.mark.skipif(not (SHARED / "tinyshakespeare.txt").exists(), reason="shared data absent")
def test_real_tinyshakespeare_vocabulary():
    vocab, train_ids, val_ids = charlm.prepare(str(SHARED / "tinyshakespeare.txt"))
    assert len(vocab) == 66 and len(train_ids) + len(val_ids) == 1115394


@pytest.mark.skipif(not (SHARED / "aclImdb_labeled.tar.gz").exists(), reason="shared data absent")
def test_real_imdb_archive_has_both_full_splits():
    splits = data.load_imdb(str(SHARED / "aclImdb_labeled.tar.gz"))
    assert len(splits["train"]) == 25000 and len(splits["test"]) == 25000
    assert sum(y for _, y in splits["test"]) == 12500
