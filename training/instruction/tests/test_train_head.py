"""Training the delivery head from the phrase bank, for real: the result generalizes to held-out phrasings."""

from emoomni.services.instruction.backends.embedding_head import load_embedder
from emoomni.services.instruction.delivery import DeliveryHead
from training.instruction.compose import build_examples, load_heldout
from training.instruction.train_head import heldout_report, train


def test_composed_training_set_never_contains_a_held_out_phrasing():
    texts = {e.text.lower() for e in build_examples()}
    assert len(texts) > 1000
    assert not texts & {h["text"].lower() for h in load_heldout()}


def test_training_from_scratch_reaches_the_held_out_bar_and_round_trips(tmp_path):
    embedder = load_embedder()
    head = train(embedder, seed=1, epochs=150)
    report = heldout_report(embedder, head)
    assert report["accuracy"] >= 0.75, report["misses"]
    head.save(tmp_path)
    again = DeliveryHead.load(tmp_path)
    assert heldout_report(embedder, again)["accuracy"] == report["accuracy"]
