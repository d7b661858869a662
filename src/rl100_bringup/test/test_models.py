"""The ``model`` argument: the shipped model by default, a given file, or none; misses named."""

from pathlib import Path

import pytest
from rl100_bringup import graph as graph_mod
from rl100_bringup import models


def _model(directory: Path, name: str = models.SHIPPED_MODEL, card: bool = True) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    onnx = directory / name
    onnx.write_bytes(b'onnx')
    if card:
        models.card_path(onnx).write_text('{}')
    return onnx


def test_the_shipped_model_is_looked_for_in_the_workspace_models_dir():
    candidates = [str(c) for c in models.shipped_model_candidates()]
    repo = Path(__file__).resolve().parents[3]
    assert str(repo / 'models' / models.SHIPPED_MODEL) in candidates
    assert models.card_path(Path('m/juicing_place_cm.onnx')) == Path(
        'm/juicing_place_cm.card.json')


def test_empty_means_the_shipped_model(monkeypatch, tmp_path):
    first, second = tmp_path / 'share' / 'models', tmp_path / 'ws' / 'models'
    monkeypatch.setattr(models, 'shipped_model_candidates', lambda: [
        first / models.SHIPPED_MODEL, second / models.SHIPPED_MODEL])
    with pytest.raises(models.ModelError) as missing:
        models.resolve_model('')
    message = str(missing.value)
    assert 'the shipped model models/juicing_place_cm.onnx is missing' in message
    assert str(first / models.SHIPPED_MODEL) in message and 'model:=none' in message
    shipped = _model(second)
    assert models.resolve_model('') == str(shipped)
    assert models.resolve_model('  ') == str(shipped)
    _model(first, card=False)  # found first, but without its card: named, not skipped
    with pytest.raises(models.ModelError, match='juicing_place_cm.card.json beside it'):
        models.resolve_model('')


def test_none_and_explicit_paths(tmp_path, monkeypatch):
    assert models.resolve_model('none') == '' and models.resolve_model('None') == ''
    onnx = _model(tmp_path, 'policy.onnx')
    assert models.resolve_model(str(onnx)) == str(onnx)
    monkeypatch.chdir(tmp_path)
    assert models.resolve_model('policy.onnx') == str(onnx)  # made absolute
    with pytest.raises(models.ModelError, match=f'no model file {tmp_path}/other.onnx'):
        models.resolve_model('other.onnx')


def test_graph_argument_of_type_model(monkeypatch, tmp_path):
    monkeypatch.setattr(models, 'shipped_model_candidates',
                        lambda: [tmp_path / models.SHIPPED_MODEL])
    graph = graph_mod.load('orange_juicer')
    assert graph.arguments['model'].type == 'model'
    with pytest.raises(graph_mod.GraphError, match="argument 'model': the shipped model"):
        graph.resolve()
    shipped = _model(tmp_path)
    nodes = {n.name: n for n in graph.resolve()}
    assert nodes['policy_node'].parameters['model_path'] == str(shipped)
