import json

import pytest


@pytest.mark.slow
def test_benchmark_reports_pipeline_and_generator_rates(tmp_path):
    from tools.analysis.benchmark_bank import main
    out = tmp_path / 'bench.json'
    result = main(['--tiny', '--images', '8', '--workers', '1', '--executor', 'thread',
                   '--work-dir', str(tmp_path / 'work'), '--json', str(out)])
    saved = json.loads(out.read_text())
    # ratio: against the raw generator (latents -> uint8 on the device); ratio_to_generator:
    # against the diffusers call as the build makes it
    assert saved['ratio'] == pytest.approx(
        saved['pipeline_img_s'] / saved['raw_generator_img_s'], rel=1e-3)
    assert saved['ratio_to_generator'] == pytest.approx(
        saved['pipeline_img_s'] / saved['generator_img_s'], rel=1e-3)
    assert set(saved['stages']) == {'generate', 'segment', 'score', 'filter', 'write'}
    assert all(v > 0 for v in saved['stages'].values())
    assert saved['instances_written'] == 8 and result['settings']['arch'] == 'tiny'
    assert (tmp_path / 'work' / 'bank' / 'manifest.json').is_file()  # --work-dir is kept


def test_build_tool_parses_stages():
    from tools.bank.build import parse_args
    args = parse_args(['configs/bank/toy.py', '--stage', 'filter', 'write', '--cfg-options',
                       'filter.min_clip=20'])
    assert args.stage == ['filter', 'write'] and args.cfg_options == {'filter.min_clip': 20}
    with pytest.raises(SystemExit):
        parse_args(['configs/bank/toy.py', '--stage', 'paint'])
