"""Face and pose conditioning against the original's loaders (conditioning_reference fixtures), and
the original's drawing behaviours on small hand-made inputs."""

import numpy as np
import pytest

from input_pipeline import conditioning_parity
from input_pipeline import drawing
from input_pipeline import face
from input_pipeline import keypoints as kp
from input_pipeline import pose

def test_every_case_matches_the_original(conditioning_fixtures):
  cases = conditioning_parity.find_cases(conditioning_fixtures)
  assert cases, f'no cases under {conditioning_fixtures}'
  rows = [row for case in cases for row in conditioning_parity.compare_case(case)]
  assert all(row.passed for row in rows), conditioning_parity.format_table(rows)
  names = {row.case for row in rows}
  assert names == {case.name for case in cases}


def test_cli_exit_status(conditioning_fixtures, tmp_path, capsys):
  assert conditioning_parity.main([str(tmp_path / 'missing')]) == 2
  assert 'missing: no such folder' in capsys.readouterr().err
  assert conditioning_parity.main([str(tmp_path)]) == 2
  assert 'no case folders' in capsys.readouterr().err
  assert conditioning_parity.main([str(conditioning_fixtures), '--case', 'face_no_dist_map']) == 0
  out = capsys.readouterr().out
  assert 'face_no_dist_map' in out and 'FAIL' not in out


def test_logged_draws_must_follow_the_original_order():
  draws = conditioning_parity.LoggedDraws([
      {'fn': 'np.random.choice', 'args': [1], 'result': 0},  # the sampler's: skipped
      {'fn': 'random.randint', 'args': [256, 385], 'result': 354},
      {'fn': 'np.random.randn', 'args': [5, 2], 'result': [[0.0, 1.0]] * 5},
      {'fn': 'np.random.rand', 'args': [], 'result': 0.25}])
  assert draws.integers(256, 386) == 354
  assert draws.standard_normal((5, 2)).shape == (5, 2)
  with pytest.raises(conditioning_parity.DrawMismatch, match='np.random.rand'):
    draws.standard_normal()
  assert draws.random() == 0.25 and draws.left == 0


def test_stamps_are_asymmetric_and_rgb_stamps_average():
  grey = np.zeros((8, 8), np.uint8)
  drawing.draw_edge(grey, np.array([4]), np.array([4]), bw=1)
  assert grey[3:5, 3:5].all() and grey.sum() == 4 * 255  # offsets -1..0 only
  rgb = np.zeros((8, 8, 3), np.uint8)
  drawing.draw_edge(rgb, np.array([3, 4]), np.array([4, 4]), bw=1, colour=(200, 100, 50))
  # the first stamp lands on black and is painted; later ones overlap it, so every pixel of
  # theirs, black ones included, becomes (old + colour) / 2
  np.testing.assert_array_equal(rgb[3, 2], (200, 100, 50))
  np.testing.assert_array_equal(rgb[3, 4], (100, 50, 25))


def test_curves_truncate_and_skip_steep_parabolas():
  x, y = drawing.interp_points([10, 14], [0, 2])
  np.testing.assert_array_equal(x, [10, 11, 12, 14])  # int(14 - 10) samples over 4 px
  np.testing.assert_array_equal(y, [0, 0, 1, 2])
  x, y = drawing.interp_points([0, 1, 2], [0, 3, 6])  # y spans more: fitted as x(y)
  np.testing.assert_array_equal(y, [0, 1, 2, 3, 4, 6])
  assert drawing.interp_points([0, 2, 2.5], [0, -2, 0]) is None  # y = 2x(x - 2.5): |a| > 1


def test_canny_edges_wrap_where_they_meet_face_lines():
  rng = np.random.default_rng(0)
  points = np.stack([np.linspace(20, 76, 68), 48 + 10 * np.sin(np.arange(68))], -1).round()
  points[:17] = np.stack([np.linspace(20, 76, 17), 60 + 8 * np.cos(np.linspace(0, np.pi, 17))],
                         -1).round()
  image = np.zeros((96, 96, 3), np.uint8)
  image[:, 48:] = 255  # a hard vertical edge through the face outline
  image = np.clip(image + rng.integers(0, 3, image.shape), 0, 255).astype(np.uint8)
  maps, parts = face.face_maps(points, image, 96, 96, no_canny_edge=False, no_dist_map=True)
  plain, _ = face.face_maps(points, image, 96, 96, no_canny_edge=True, no_dist_map=True)
  assert maps.shape == (96, 96, 1) and parts.max() <= 6
  assert set(np.unique(maps).tolist()) <= {0, 254, 255}
  wrapped = maps[..., 0] == 254
  assert wrapped.any() and (plain[..., 0][wrapped] == 255).all()


def _person_with_missing_ear() -> dict[str, np.ndarray]:
  body = np.zeros((kp.NUM_BODY_POINTS, 3))
  body[[0, 1, 15, 16, 17], :2] = [[60, 30], [60, 50], [55, 25], [65, 25], [50, 28]]
  body[[0, 1, 15, 16, 17], 2] = 0.9  # LEar (18) undetected
  return {'body': body, 'face': np.zeros((70, 3)), 'hand_left': np.zeros((21, 3)),
          'hand_right': np.zeros((21, 3))}


@pytest.mark.parametrize('jitter_missing_points', [False, True])
def test_remove_face_labels_jitter_of_missing_points(jitter_missing_points):
  """The original moves the missing LEar off (0, 0) and draws LEye -> near-origin."""
  rng = np.random.default_rng(3)
  rendering = pose.openpose_map([_person_with_missing_ear()], 96, 128, rng,
                                random_drop_prob=1e-9, remove_face_labels=True,
                                basic_point_only=False,
                                jitter_missing_points=jitter_missing_points)
  assert rendering[25:35, 55:65].any()  # the head is drawn either way
  assert rendering[:12, :12].any() == jitter_missing_points


def test_draws_happen_even_without_drops():
  class Counter:
    calls = 0

    def random(self):
      self.calls += 1
      return 0.5

  counter = Counter()
  pose.openpose_map([_person_with_missing_ear()], 64, 64, counter, random_drop_prob=0.0,
                    remove_face_labels=False, basic_point_only=False)
  assert counter.calls == len(kp.HEAD_LIMBS) + len(kp.BODY_LIMBS) + 3  # limbs, 2 hands, face
  iuv = np.zeros((4, 4, 3), np.uint8)
  pose.densepose_map(iuv, counter, random_drop_prob=0.0, remove_face_labels=False)
  assert counter.calls == 27 + kp.NUM_DENSEPOSE_PARTS
