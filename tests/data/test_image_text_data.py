"""Image-caption data: caption cleaning, annotation formats, image errors, transforms that keep captions true."""

import json
import logging

import pytest
import torch
from PIL import Image

from lmtrain.config import TokenizerConfig
from lmtrain.data.captions import CaptionPair, pre_caption, read_captions, swap_left_right
from lmtrain.data.image_text import ImageTextDataset, load_pair_images
from lmtrain.data.shapes import shape_scenes
from lmtrain.data.tokenizer import train_tokenizer
from lmtrain.errors import UserError
from tests.albef_fixtures import ROLES


def test_pre_caption_cleans_like_albef():
    assert (
        pre_caption("A child, in a pink-dress/hat!  Climbing (stairs).", 30)
        == "a child in a pink dress hat climbing stairs"
    )
    assert pre_caption("one two three four five", 3) == "one two three"


def test_swap_left_right_swaps_whole_words_only():
    assert swap_left_right("a dog to the left of a cat, right?") == "a dog to the right of a cat, left?"
    assert swap_left_right("leftover bright") == "leftover bright"


def test_json_tsv_and_csv_captions(tmp_path):
    (tmp_path / "a.json").write_text(
        json.dumps([{"image": "x.jpg", "caption": ["one", "two"]}, {"image": "y.jpg", "caption": "three"}])
    )
    pairs = read_captions(tmp_path / "a.json", "imgs")
    assert [(p.image.endswith("imgs/x.jpg"), p.caption, p.image_id) for p in pairs] == [
        (True, "one", 0),
        (True, "two", 0),
        (False, "three", 1),
    ]
    (tmp_path / "b.tsv").write_text("x.jpg\ta dog\ny.jpg\ta cat\n")
    assert [p.caption for p in read_captions(tmp_path / "b.tsv", None)] == ["a dog", "a cat"]
    (tmp_path / "captions.txt").write_text('image,caption\nx.jpg,"a dog, running ."\nx.jpg,a brown dog\n')
    pairs = read_captions(tmp_path / "captions.txt", None)
    assert [p.caption for p in pairs] == ["a dog, running .", "a brown dog"] and {p.image_id for p in pairs} == {0}
    assert pairs[0].image == str(tmp_path / "x.jpg")  # relative to the captions file's folder by default


def test_bad_annotation_files_name_the_problem(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('[{"image": "x.jpg", "caption": "a"},')
    with pytest.raises(UserError, match=r"bad.json is not valid JSON \(line 1"):
        read_captions(bad, None)
    bad.write_text('[{"img": "x.jpg"}]')
    with pytest.raises(UserError, match='entry 0 has no "image" and "caption" keys'):
        read_captions(bad, None)
    tsv = tmp_path / "c.tsv"
    tsv.write_text("x.jpg a caption without a tab\n")
    with pytest.raises(UserError, match=r"c.tsv, line 1: expected `image<TAB>caption`"):
        read_captions(tsv, None)


def _pairs_with_bad_images(tmp_path):
    Image.new("RGB", (20, 20), (200, 0, 0)).save(tmp_path / "good.png")
    (tmp_path / "broken.jpg").write_bytes(b"this is not a jpeg")
    return [
        CaptionPair(str(tmp_path / "good.png"), "red", 0),
        CaptionPair(str(tmp_path / "missing.jpg"), "gone", 1),
        CaptionPair(str(tmp_path / "broken.jpg"), "broken", 2),
    ]


def test_missing_and_unreadable_images_fail_naming_the_file(tmp_path):
    pairs = _pairs_with_bad_images(tmp_path)
    with pytest.raises(UserError, match=r"missing.jpg does not exist.*data.skip_bad_images=true"):
        load_pair_images(pairs, 16, skip_bad=False)
    with pytest.raises(UserError, match=r"broken.jpg cannot be read"):
        load_pair_images([pairs[0], pairs[2]], 16, skip_bad=False)


def test_skip_bad_images_drops_and_counts_them(tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        kept, images = load_pair_images(_pairs_with_bad_images(tmp_path), 16, skip_bad=True)
    assert [p.caption for p in kept] == ["red"] and len(images) == 1
    assert "skipped 2 of 3 images" in caplog.text


def _half_image(left, right, side=32):
    img = Image.new("RGB", (side, side), right)
    img.paste(Image.new("RGB", (side // 2, side), left), (0, 0))
    return img


def test_flipped_images_get_captions_with_left_and_right_swapped():
    captions = ["red on the left blue on the right"] * 8
    tokenizer = train_tokenizer(
        captions + ["red on the right blue on the left"],
        TokenizerConfig(vocab_size=100, min_frequency=1, special_tokens=ROLES),
    )
    images = {"img": _half_image((255, 0, 0), (0, 0, 255))}
    pairs = [CaptionPair("img", c, 0) for c in captions]
    dataset = ImageTextDataset(
        pairs, images, tokenizer, image_size=16, max_seq_len=16, max_words=30, train=True, crop_min_scale=0.9
    )
    seen = set()
    for epoch in range(4):
        dataset.set_epoch(epoch)
        for i in range(len(dataset)):
            example = dataset[i]
            red_left = example["image"][0, :, :4].mean() > example["image"][0, :, -4:].mean()  # red channel
            text = tokenizer.decode(example["input_ids"].tolist())
            assert text.startswith("red on the left" if red_left else "red on the right"), text
            seen.add(bool(red_left))
    assert seen == {True, False}  # both orientations occurred


def test_eval_transform_is_a_deterministic_resize():
    scenes = shape_scenes(4, 0, side=64)
    tokenizer = train_tokenizer(
        [c for _, c in scenes], TokenizerConfig(vocab_size=100, min_frequency=1, special_tokens=ROLES)
    )
    pairs = [CaptionPair(f"s{i}", c, i) for i, (_, c) in enumerate(scenes)]
    images = {f"s{i}": img for i, (img, _) in enumerate(scenes)}
    dataset = ImageTextDataset(pairs, images, tokenizer, image_size=24, max_seq_len=32, max_words=30, train=False)
    a, b = dataset[1], dataset[1]
    assert a["image"].shape == (3, 24, 24) and torch.equal(a["image"], b["image"])
    assert "labels" not in a and a["image_id"] == 1


def test_shape_scenes_are_reproducible_and_held_out_captions_unique():
    a, b = shape_scenes(50, 3), shape_scenes(50, 3)
    assert [c for _, c in a] == [c for _, c in b]
    assert a[0][0].tobytes() == b[0][0].tobytes()
    held = shape_scenes(100, 4, unique=True)
    assert len({c for _, c in held}) == 100


def test_caption_tokenizer_is_cached_by_captions_and_settings(tmp_path):
    from lmtrain.data.image_caption_sets import ImageCaptionData, caption_tokenizer

    scenes = shape_scenes(40, 0)
    data = ImageCaptionData([CaptionPair(f"s{i}", c, i) for i, (_, c) in enumerate(scenes)], [])
    cfg = TokenizerConfig(vocab_size=300, min_frequency=1, special_tokens=ROLES)
    first = caption_tokenizer(data, cfg, 30, str(tmp_path))
    assert first.tokenizer.to_str() == caption_tokenizer(data, cfg, 30, str(tmp_path)).tokenizer.to_str()
    assert len(list(tmp_path.glob("tokenizers/*/tokenizer.json"))) == 1
    caption_tokenizer(data, TokenizerConfig(vocab_size=200, min_frequency=1, special_tokens=ROLES), 30, str(tmp_path))
    assert len(list(tmp_path.glob("tokenizers/*/tokenizer.json"))) == 2  # other settings, another tokenizer
    ids = first.tokenizer.encode(scenes[0][1]).ids
    assert ids[0] == first.id("cls") and ids[-1] == first.id("sep")


@pytest.mark.parametrize(
    "name,content,where",
    [
        ("a.tsv", "x.jpg\tfine\n../../etc/passwd\tsecret\n", "line 2"),
        ("a.csv", "image,caption\nx.jpg,fine\n/etc/passwd,secret\n", "line 3"),
        (
            "a.json",
            json.dumps([{"image": "x.jpg", "caption": "ok"}, {"image": "sub/../../y.jpg", "caption": "no"}]),
            "entry 1",
        ),
    ],
)
def test_image_paths_outside_the_root_are_refused_unless_allowed(tmp_path, name, content, where):
    root = tmp_path / "imgs"
    (tmp_path / name).write_text(content)
    with pytest.raises(UserError) as error:
        read_captions(tmp_path / name, root)
    message = " ".join(str(error.value).split())
    assert f"{name}, {where}" in message and "outside data.image_root" in message
    assert "data.allow_outside_root=true" in message
    pairs = read_captions(tmp_path / name, root, allow_outside_root=True)
    assert len(pairs) == 2
    assert read_captions(tmp_path / name, None, allow_outside_root=True)[0].image == str(tmp_path / "x.jpg")


def test_paths_inside_the_root_pass_including_dot_segments(tmp_path):
    (tmp_path / "a.tsv").write_text("sub/./x.jpg\tone\nsub/../y.jpg\ttwo\n")
    assert [p.caption for p in read_captions(tmp_path / "a.tsv", tmp_path / "imgs")] == ["one", "two"]
