"""sslkit's ViT: timm contract and round trip, token keeping, variable-length batches, registers."""

from __future__ import annotations

import pytest
import timm
import torch
from lightly.models.utils import get_2d_sine_cosine_positional_embedding
from timm.models.vision_transformer import VisionTransformer as TimmVisionTransformer

from sslkit.backbones import VisionTransformer, create_backbone, timm_kwargs
from sslkit.optim.param_groups import param_groups

NAME = "vit_tiny_patch16_224"
TINY = dict(img_size=32, patch_size=8, depth=2)  # 4x4 grid, D=192, 3 heads


def _images(batch_size: int = 3, size: int = 32) -> torch.Tensor:
    return torch.randn(batch_size, 3, size, size, generator=torch.Generator().manual_seed(0))


def test_create_backbone_returns_timm_compatible_vit() -> None:
    model = create_backbone(NAME, **TINY, reg_tokens=2)
    assert isinstance(model, VisionTransformer) and isinstance(model, TimmVisionTransformer)
    assert model.num_classes == 0 and model.num_features == 192 and model.num_prefix_tokens == 3
    x = _images()
    feats = model.forward_features(x)
    assert feats.shape == (3, 3 + 16, 192)  # [cls, reg, reg, 16 patches]
    assert model.forward_head(feats, pre_logits=True).shape == (3, 192)
    assert torch.equal(model(x), model.forward_head(feats, pre_logits=True))


@pytest.mark.parametrize("reg_tokens", [0, 4])
def test_timm_round_trip_identical_features(reg_tokens: int) -> None:
    kwargs = dict(TINY, reg_tokens=reg_tokens, local_window=None, varlen="pack")
    ours = create_backbone(NAME, **kwargs).eval()
    theirs = timm.create_model(NAME, num_classes=0, **timm_kwargs(kwargs)).eval()
    assert type(theirs) is TimmVisionTransformer
    x = _images()
    # timm → ours
    ours.load_state_dict(theirs.state_dict(), strict=True)
    torch.testing.assert_close(ours.forward_features(x), theirs.forward_features(x))
    torch.testing.assert_close(ours(x), theirs(x))
    # ours → timm (fresh weights on our side)
    ours = create_backbone(NAME, **kwargs).eval()
    theirs.load_state_dict(ours.state_dict(), strict=True)
    torch.testing.assert_close(theirs.forward_features(x), ours.forward_features(x))
    assert list(ours.state_dict()) == list(theirs.state_dict())


def test_registers_keep_head_shapes_and_are_excluded_from_pooling() -> None:
    torch.manual_seed(0)
    plain = create_backbone(NAME, **TINY, global_pool="avg", fc_norm=False).eval()
    regs = create_backbone(NAME, **TINY, global_pool="avg", fc_norm=False, reg_tokens=4).eval()
    x = _images()
    assert plain(x).shape == regs(x).shape == (3, 192)
    feats = regs.forward_features(x)
    torch.testing.assert_close(regs.forward_head(feats, pre_logits=True), feats[:, 1 + 4 :].mean(1))


def test_keep_all_in_permuted_order_permutes_tokens() -> None:
    # Positions are added before gathering and attention is permutation-equivariant.
    model = create_backbone(NAME, **TINY, reg_tokens=1).eval()
    x = _images()
    perm = torch.stack([torch.randperm(16, generator=torch.Generator().manual_seed(i)) for i in range(3)])
    full = model.forward_features(x)
    kept = model.forward_features(x, keep=perm)
    torch.testing.assert_close(kept[:, :2], full[:, :2])
    torch.testing.assert_close(kept[:, 2:], full[:, 2:].gather(1, perm.unsqueeze(-1).expand(-1, -1, 192)))


def _count_block_inputs(model: VisionTransformer) -> list[tuple[int, ...]]:
    seen: list[tuple[int, ...]] = []
    for blk in model.blocks:
        blk.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape[:2])))
    return seen


def test_blocks_see_only_kept_tokens() -> None:
    model = create_backbone(NAME, **TINY, reg_tokens=2, varlen="pad").eval()
    seen = _count_block_inputs(model)
    keep = torch.randint(0, 16, (3, 5))
    out = model.forward_features(_images(), keep=keep)
    assert out.shape == (3, 3 + 5, 192)
    assert seen == [(3, 3 + 5)] * 2


@pytest.mark.parametrize("varlen", ["pack", "pad"])
def test_variable_length_batch_equals_each_sample_alone(varlen: str) -> None:
    model = create_backbone(NAME, **TINY, reg_tokens=2, varlen=varlen).eval()
    seen = _count_block_inputs(model)
    x = _images()
    keep_lens = torch.tensor([7, 3, 5])
    keep = torch.stack([torch.randperm(16, generator=torch.Generator().manual_seed(i))[:7] for i in range(3)])
    keep = keep.masked_fill(torch.arange(7) >= keep_lens.unsqueeze(1), 0)  # padding entries: any index
    out = model.forward_features(x, keep=keep, keep_lens=keep_lens)
    assert out.shape == (3, 3 + 7, 192)
    expected_seq = (1, 3 * 3 + 15) if varlen == "pack" else (3, 3 + 7)
    assert seen == [expected_seq] * 2  # pack: no padded token reaches the blocks
    for b, n in enumerate(keep_lens.tolist()):
        alone = model.forward_features(x[b : b + 1], keep=keep[b : b + 1, :n])
        torch.testing.assert_close(out[b : b + 1, : 3 + n], alone, atol=1e-5, rtol=1e-5)
        assert out[b, 3 + n :].abs().sum() == 0


@pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")
def test_packed_flex_attention_matches_packed_sdpa() -> None:
    # FlexAttention has no CPU backward; its forward on CPU (eager) must agree with the SDPA path.
    model = create_backbone(NAME, **TINY, varlen="pack", attn_impl="sdpa").eval()
    x, keep_lens = _images(), torch.tensor([16, 9, 4])
    keep = torch.arange(16).expand(3, -1)
    with torch.no_grad():
        sdpa = model.forward_features(x, keep=keep, keep_lens=keep_lens)
        model.configure(varlen="pack", attn_impl="flex")
        flex = model.forward_features(x, keep=keep, keep_lens=keep_lens)
    torch.testing.assert_close(flex, sdpa, atol=1e-5, rtol=1e-5)


def test_grad_checkpointing_gives_same_gradients() -> None:
    torch.manual_seed(0)
    model = create_backbone(NAME, **TINY)
    ckpt = create_backbone(NAME, **TINY, grad_checkpointing=True)
    ckpt.load_state_dict(model.state_dict())
    x = _images()
    keep, keep_lens = torch.randint(0, 16, (3, 6)), torch.tensor([6, 2, 4])
    for m in (model, ckpt):
        m.forward_features(x, keep=keep, keep_lens=keep_lens).square().mean().backward()
    for (name, p), q in zip(model.named_parameters(), ckpt.parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)


def test_dynamic_img_size_interpolates_position_embedding() -> None:
    model = create_backbone(NAME, **TINY, dynamic_img_size=True).eval()
    assert model.forward_features(_images(size=48)).shape == (3, 1 + 36, 192)


def test_non_vit_rejects_vit_options() -> None:
    with pytest.raises(TypeError):
        create_backbone("resnet18", local_window=(3, 3))


def test_from_timm_rejects_other_classes() -> None:
    with pytest.raises(TypeError):
        VisionTransformer.from_timm(torch.nn.Linear(2, 2))  # type: ignore[arg-type]


@pytest.mark.parametrize("class_token", [True, False])
def test_sincos_pos_embed_is_lightlys_fixed_embedding_and_loads_into_timm(class_token: bool) -> None:
    kwargs = dict(TINY, class_token=class_token, global_pool="token" if class_token else "avg", sincos_pos_embed=True)
    ours = create_backbone(NAME, **kwargs).eval()
    prefix = int(class_token)
    expected = get_2d_sine_cosine_positional_embedding(192, grid_size=4, num_prefix_tokens=prefix)
    torch.testing.assert_close(ours.pos_embed.detach()[0], torch.from_numpy(expected).float())
    assert not ours.pos_embed.requires_grad
    assert ours.pos_embed.detach()[0, prefix:].abs().sum() > 0 and ours.pos_embed.detach()[0, :prefix].abs().sum() == 0

    # The optimiser never sees it, so training leaves it as it is.
    assert all(p is not ours.pos_embed for g in param_groups({"backbone": ours}, 0.05) for p in g["params"])
    ours.train()(_images()).square().mean().backward()
    assert ours.pos_embed.grad is None

    # Same key and shape as timm's learned embedding: plain timm loads the weights back exactly.
    theirs = timm.create_model(NAME, num_classes=0, **timm_kwargs(kwargs)).eval()
    theirs.load_state_dict(ours.state_dict(), strict=True)
    x = _images()
    torch.testing.assert_close(theirs(x), ours.eval()(x))
