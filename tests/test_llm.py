"""Tokenizer and AV language model: special tokens, chat template, splicing, training, generation, HF/LoRA paths."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from avllm.config import LMConfig
from avllm.encoders import WeightsError
from avllm.llm import (
    AV_TOKEN,
    IGNORE_INDEX,
    AVLanguageModel,
    build_llm,
    lm_task_losses,
    next_token_loss,
    token_losses,
)
from avllm.tokenizer import load_tokenizer, train_tokenizer

GROUNDING = [f"<loc_{i}>" for i in range(32)] + [f"<t_{j}>" for j in range(64)]
CORPUS = [
    f"where is the {c} {o} that {s}? it is at the {p} of the frame."
    for c in ("red", "blue", "green", "yellow")
    for o in ("ball", "drum", "bell")
    for s in ("hums", "chirps", "rings")
    for p in ("left", "right", "top")
]
SMALL = LMConfig(hidden_size=64, layers=2, heads=4, kv_heads=2, intermediate_size=128, max_positions=128)

# a toy grounding task: the answer depends on both the prompt and the AV tokens
TASK = [
    ("where is the ball?", "left <loc_3><loc_7>"),
    ("where is the drum that hums loudly?", "right <loc_20><loc_9>"),
    ("when does it ring?", "<t_3><t_12>"),
    ("which object makes the sound?", "the green bell"),
]


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer(CORPUS, vocab_size=400, special_tokens=GROUNDING)


@pytest.fixture(scope="module")
def trained(tok):
    """A small Llama trained on TASK for a few dozen steps: (model, av_embeds, losses)."""
    torch.manual_seed(0)
    model = build_llm(SMALL, tok)
    av = torch.randn(len(TASK), 4, model.hidden_size)
    batch = model.build_inputs([p for p, _ in TASK], [a for _, a in TASK], num_av_tokens=4)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        _, loss = model(batch["input_ids"], batch["attention_mask"], av, batch["labels"])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return model.eval(), av, losses


# ----------------------------------------------------------------------------------------------------------------
# tokenizer


def test_special_tokens_are_single_tokens(tok):
    for t in ("<loc_7>", "<t_3>", AV_TOKEN, "<loc_31>", "<t_63>"):
        ids = tok(f"box{t}x {t} {t}{t}", add_special_tokens=False)["input_ids"]
        assert ids.count(tok.convert_tokens_to_ids(t)) == 4, (t, tok.convert_ids_to_tokens(ids))
    assert tok.convert_tokens_to_ids(["<pad>", "<bos>", "<eos>", "<unk>", AV_TOKEN]) == [0, 1, 2, 3, 4]
    assert tok.pad_token == "<pad>" and tok.eos_token == "<eos>" and tok.bos_token == "<bos>"
    assert len(tok) == len(set(tok.get_vocab().values()))  # no duplicated ids


def test_tokenizer_round_trip(tok, tmp_path):
    tok.save_pretrained(tmp_path)
    again = load_tokenizer(tmp_path)
    text = "where is the red bell <loc_7><loc_12> at <t_3>? <av><av>"
    assert again(text)["input_ids"] == tok(text)["input_ids"]
    assert len(again) == len(tok) and again.get_vocab() == tok.get_vocab()
    assert again.convert_tokens_to_ids("<t_3>") == tok.convert_tokens_to_ids("<t_3>")
    with pytest.raises(FileNotFoundError):
        load_tokenizer(tmp_path / "nothing")


def test_tokenizer_lowercase_option():
    low = train_tokenizer(CORPUS, vocab_size=300, special_tokens=["<loc_0>"], lowercase=True)
    assert low("RED Ball<loc_0>")["input_ids"] == low("red ball<loc_0>")["input_ids"]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(list("abcdelmrt ?,.0123éß\n") + ["<loc_5>", "<t_9>", " <t_0>", "<av>"]),
                max_size=30).map("".join))
def test_tokenizer_is_lossless(tok, text):
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids, skip_special_tokens=False) == text


# ----------------------------------------------------------------------------------------------------------------
# chat template, labels, splicing


def test_labels_cover_only_the_answer(tok):
    model = build_llm(SMALL, tok)
    prompts, answers = ["where is the ball?", "what?"], ["left <loc_3><loc_7>", "a long answer: the green bell"]
    b = model.build_inputs(prompts, answers, num_av_tokens=3)
    ids, mask, labels = b["input_ids"], b["attention_mask"], b["labels"]
    assert ids.shape == mask.shape == labels.shape
    for row, ans in enumerate(answers):
        n = int(mask[row].sum())
        assert mask[row, :n].all() and not mask[row, n:].any()  # right padding
        lab = labels[row][labels[row] != IGNORE_INDEX].tolist()
        assert lab[-1] == tok.eos_token_id
        assert tok.decode(lab[:-1], skip_special_tokens=False).strip() == ans
        keep = labels[row] != IGNORE_INDEX
        assert torch.equal(ids[row][keep], labels[row][keep])
        assert keep.nonzero().flatten().tolist() == list(range(n - len(lab), n))  # the answer is the tail
        assert int((ids[row] == model.av_id).sum()) == 3 and ids[row, 0] == tok.bos_token_id
    gen = model.build_inputs(prompts, None, num_av_tokens=3)
    assert "labels" not in gen
    m = gen["attention_mask"]
    for row in range(2):
        n = int(m[row].sum())
        assert m[row, -n:].all() and not m[row, :-n].any()  # left padding
        assert tok.decode(gen["input_ids"][row, -n:][4:]).endswith(" user: " + prompts[row] + " assistant:")


def test_loss_is_next_token_cross_entropy(tok):
    model = build_llm(SMALL, tok)
    b = model.build_inputs(["where is the ball?"], ["left <loc_3>"], num_av_tokens=2)
    av = torch.randn(1, 2, model.hidden_size)
    logits, loss = model(b["input_ids"], b["attention_mask"], av, b["labels"])
    want = torch.nn.functional.cross_entropy(logits[0, :-1], b["labels"][0, 1:], ignore_index=IGNORE_INDEX)
    torch.testing.assert_close(loss, want)
    assert model(b["input_ids"], b["attention_mask"], av)[1] is None


@given(st.lists(st.integers(0, 6), min_size=1, max_size=4), st.integers(0, 2**16))
@settings(max_examples=30, deadline=None)
def test_loss_norms_weigh_tokens_or_samples(answer_lengths, seed):
    """token: the mean over every labelled token (the transformers LM loss); sample: the mean of each row's own
    mean, so a row's weight does not grow with its answer's length; rows without labels count in neither."""
    g = torch.Generator().manual_seed(seed)
    rows, length, vocab = len(answer_lengths), 10, 7
    logits = torch.randn(rows, length, vocab, generator=g)
    labels = torch.full((rows, length), IGNORE_INDEX)
    for r, n in enumerate(answer_lengths):  # answer (+ eos) at the end of the row, as build_inputs right-pads
        labels[r, length - n:] = torch.randint(0, vocab, (n,), generator=g)
    per_row = [torch.nn.functional.cross_entropy(logits[r, :-1], labels[r, 1:], ignore_index=IGNORE_INDEX,
                                                 reduction="sum") for r in range(rows)]
    counts = [int((labels[r, 1:] != IGNORE_INDEX).sum()) for r in range(rows)]
    total = sum(counts)
    want_token = sum(per_row) / total if total else torch.tensor(0.0)
    labelled = [p / c for p, c in zip(per_row, counts) if c]
    want_sample = sum(labelled) / len(labelled) if labelled else torch.tensor(0.0)
    torch.testing.assert_close(next_token_loss(logits, labels, "token"), torch.as_tensor(want_token))
    torch.testing.assert_close(next_token_loss(logits, labels, "sample"), torch.as_tensor(want_sample))
    if total:  # the transformers loss agrees with "token"
        from transformers.loss.loss_utils import ForCausalLMLoss
        torch.testing.assert_close(next_token_loss(logits, labels, "token"),
                                   ForCausalLMLoss(logits, labels, vocab_size=vocab))


@given(st.lists(st.tuples(st.sampled_from(["ground", "factcheck", "caption", ""]), st.integers(0, 6)), min_size=1,
                max_size=5), st.integers(0, 2**16))
@settings(max_examples=30, deadline=None)
def test_task_losses_add_up_to_the_token_mean(rows, seed):
    """lm_task_losses splits the per-token loss by task: each task's (sum, count) is that of its own rows, rows
    without a task are left out, and over all rows the sums and counts give back the batch's per-token mean."""
    g = torch.Generator().manual_seed(seed)
    length, vocab = 9, 6
    logits = torch.randn(len(rows), length, vocab, generator=g)
    labels = torch.full((len(rows), length), IGNORE_INDEX)
    for r, (_, n) in enumerate(rows):
        labels[r, length - n:] = torch.randint(0, vocab, (n,), generator=g)
    tasks = [t for t, _ in rows]
    got = lm_task_losses(*token_losses(logits, labels), tasks)
    for task in {t for t, n in rows if t and n > 0}:
        idx = [r for r, t in enumerate(tasks) if t == task]
        total, count = got[f"lm.{task}"]
        assert count == int((labels[idx, 1:] != IGNORE_INDEX).sum())
        assert abs(total / count - float(next_token_loss(logits[idx], labels[idx], "token"))) < 1e-4
    assert set(got) == {f"lm.{t}" for t, n in rows if t and n > 0}
    named = [r for r, t in enumerate(tasks) if t]
    if sum(c for _, c in got.values()):
        mean = sum(s for s, _ in got.values()) / sum(c for _, c in got.values())
        assert abs(mean - float(next_token_loss(logits[named], labels[named], "token"))) < 1e-4
    assert lm_task_losses(*token_losses(logits, labels), tasks[:-1] + ["x", "y"]) == {}  # a wrong-length task list


def test_sample_norm_gives_a_short_answer_its_own_weight():
    """Two rows, a one-token answer that is badly wrong and a long one that is right: under "token" the short
    answer's loss is diluted by the long one's length, under "sample" it keeps half the weight."""
    vocab, length = 5, 12
    logits = torch.zeros(2, length, vocab)
    labels = torch.full((2, length), IGNORE_INDEX)
    labels[0, -1] = 1
    logits[0, -2, 1] = -10.0  # the short answer's one token is very unlikely
    labels[1, 2:] = 0
    logits[1, 1:-1, 0] = 10.0  # the long answer's tokens are near certain
    token, sample = next_token_loss(logits, labels, "token"), next_token_loss(logits, labels, "sample")
    short = torch.nn.functional.cross_entropy(logits[0, -2:-1], labels[0, -1:])
    torch.testing.assert_close(sample, short / 2, atol=1e-3, rtol=1e-3)
    assert token < sample / 4
    with pytest.raises(ValueError, match="loss_norm"):
        next_token_loss(logits, labels, "row")


def test_loss_norm_config_reaches_the_model(tok):
    torch.manual_seed(0)
    model = build_llm(LMConfig(**{**SMALL.to_dict(), "loss_norm": "sample"}), tok)
    b = model.build_inputs(["where is the ball?", "which object makes the sound?"], ["left", "the green bell"],
                           num_av_tokens=2)
    av = torch.randn(2, 2, model.hidden_size)
    logits, loss = model(b["input_ids"], b["attention_mask"], av, b["labels"])
    torch.testing.assert_close(loss, next_token_loss(logits, b["labels"], "sample"))
    assert not torch.allclose(loss, next_token_loss(logits, b["labels"], "token"))


def test_splice_places_av_embeds_and_checks_counts(tok):
    model = build_llm(SMALL, tok)
    b = model.build_inputs(["a", "a longer prompt"], ["x", "y"], num_av_tokens=5)
    ids = b["input_ids"]
    av = torch.randn(2, 5, model.hidden_size)
    out = model.splice(ids, av)
    plain = model.lm.get_input_embeddings()(ids)
    for row in range(2):
        pos = (ids[row] == model.av_id).nonzero().flatten()
        torch.testing.assert_close(out[row, pos], av[row])
        other = ids[row] != model.av_id
        torch.testing.assert_close(out[row, other], plain[row, other])
    with pytest.raises(ValueError, match=r"5 <av> tokens but av_embeds has 4"):
        model.splice(ids, av[:, :4])
    ids2 = ids.clone()
    ids2[1, 2] = tok.pad_token_id  # one row loses a placeholder
    with pytest.raises(ValueError, match=r"row 1 .* 4 <av> tokens but av_embeds has 5"):
        model.splice(ids2, av)


# ----------------------------------------------------------------------------------------------------------------
# training and generation


def test_training_reduces_loss(trained):
    _, _, losses = trained
    assert losses[-1] < 0.25 * losses[0], losses[::10]


def test_generate_writes_the_answers_with_grounding_tokens(trained):
    model, av, _ = trained
    out = model.generate([p for p, _ in TASK], av, max_new_tokens=12)
    assert out == [a for _, a in TASK]
    assert model.training is False


def test_left_padding_batch_equals_single(trained):
    model, av, _ = trained
    prompts = [TASK[1][0], TASK[2][0]]  # different lengths
    assert len(model.build_inputs(prompts[:1], None, 4)["input_ids"][0]) != len(
        model.build_inputs(prompts[1:], None, 4)["input_ids"][0])
    both = model.generate(prompts, av[1:3], max_new_tokens=12)
    alone = [model.generate([p], av[i + 1 : i + 2], max_new_tokens=12)[0] for i, p in enumerate(prompts)]
    assert both == alone == [TASK[1][1], TASK[2][1]]


# ----------------------------------------------------------------------------------------------------------------
# HF models and LoRA


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    """A local HF model directory: a tiny untied Llama and a tokenizer without pad or <av>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<s>", "</s>", "<unk>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(CORPUS, trainer)
    hub_tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    torch.manual_seed(1)
    lm = LlamaForCausalLM(LlamaConfig(vocab_size=len(hub_tok), hidden_size=32, num_hidden_layers=1,
                                      num_attention_heads=2, num_key_value_heads=2, intermediate_size=64,
                                      max_position_embeddings=128, tie_word_embeddings=False))
    d = tmp_path_factory.mktemp("hf_model")
    lm.save_pretrained(d)
    hub_tok.save_pretrained(d)
    return d, lm, len(hub_tok)


def test_hf_directory_loads_with_added_tokens(hf_dir, tok):
    d, saved, old_vocab = hf_dir
    model = build_llm(LMConfig(arch="hf", name_or_path=str(d)), tok)  # grounding tokens come from `tok`
    t = model.tokenizer
    assert t.pad_token is not None and t.pad_token_id >= old_vocab
    for s in ("<loc_7>", "<t_3>", AV_TOKEN):
        assert len(t(f"x{s}y", add_special_tokens=False)["input_ids"]) == 3
    emb = model.lm.get_input_embeddings().weight
    assert emb.shape[0] == len(t) == old_vocab + len(GROUNDING) + 2
    torch.testing.assert_close(emb[:old_vocab], saved.get_input_embeddings().weight)
    assert model.hidden_size == 32
    out = model.generate(["where is the bell?", "where?"], torch.randn(2, 3, 32), max_new_tokens=3)
    assert len(out) == 2 and all(isinstance(s, str) for s in out)


def test_hub_id_offline_is_a_clear_error():
    with pytest.raises(WeightsError, match="cannot reach the model hub.*local directory"):
        build_llm(LMConfig(arch="hf", name_or_path="nobody-here/no-such-model-7b"))
    with pytest.raises(WeightsError, match="not found"):
        build_llm(LMConfig(arch="hf", name_or_path="./no/such/dir"))


def test_lora_trains_adapters_and_new_tokens_only(hf_dir):
    d, _, old_vocab = hf_dir
    model = build_llm(LMConfig(arch="hf", name_or_path=str(d), lora=True, lora_r=4, lora_alpha=8),
                      special_tokens=["<loc_0>", "<loc_1>"])
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or "trainable_tokens" in n for n in trainable), trainable
    for proj in ("q_proj", "k_proj", "v_proj", "o_proj"):
        assert any(proj in n and "lora_A" in n for n in trainable)
    assert sum("trainable_tokens" in n for n in trainable) == 2  # embed_tokens and the untied lm_head
    emb_before = model.lm.get_input_embeddings()(torch.arange(len(model.tokenizer))).detach().clone()
    b = model.build_inputs(["where is the bell?"], ["<loc_0> <loc_1>"], num_av_tokens=2)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1.0)
    _, loss = model(b["input_ids"], b["attention_mask"], torch.randn(1, 2, 32), b["labels"])
    loss.backward()
    opt.step()
    emb_after = model.lm.get_input_embeddings()(torch.arange(len(model.tokenizer))).detach()
    changed = (emb_after != emb_before).any(dim=1).nonzero().flatten().tolist()
    assert changed and min(changed) >= old_vocab  # only rows of added tokens move

    frozen = build_llm(LMConfig(arch="hf", name_or_path=str(d), freeze=True), special_tokens=[])
    assert not any(p.requires_grad for p in frozen.parameters())


def test_lora_lm_with_copy_head_trains_the_head_and_copies(hf_dir):
    # The base preset's LM: a hub model with LoRA adapters and the copy head beside it.
    d, _, _ = hf_dir
    model = build_llm(LMConfig(arch="hf", name_or_path=str(d), lora=True, lora_r=4, lora_alpha=8, copy=True),
                      special_tokens=["<loc_0>", "<loc_1>"])
    assert model.copy is not None and all(p.requires_grad for p in model.copy.parameters())
    loc = [model.tokenizer.convert_tokens_to_ids(t) for t in ("<loc_0>", "<loc_1>")]
    b = model.build_inputs(["where is the bell?"], ["<loc_1> <loc_0>"], num_av_tokens=3)
    copy_ids = torch.tensor([[loc[1], loc[0], -1]])  # (B, N): two sources among the three AV tokens
    scores, loss = model(b["input_ids"], b["attention_mask"], torch.randn(1, 3, 32), b["labels"], None, copy_ids)
    assert torch.allclose(scores.exp().sum(-1), torch.ones(scores.shape[:2]), atol=1e-4)  # a distribution
    loss.backward()
    assert model.copy.gate.bias.grad.abs() > 0 and model.copy.q.weight.grad.abs().sum() > 0
    out = model.generate(["where is the bell?"], torch.randn(1, 3, 32), max_new_tokens=3, av_copy_ids=copy_ids)
    assert len(out) == 1 and isinstance(out[0], str)


def test_tokenizer_without_av_is_refused(hf_dir):
    from transformers import AutoTokenizer

    hub_tok = AutoTokenizer.from_pretrained(str(hf_dir[0]), local_files_only=True)
    with pytest.raises(ValueError, match="no <av> token"):
        AVLanguageModel(SMALL, hub_tok)
