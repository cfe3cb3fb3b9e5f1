"""Keypoint conventions shared by the readers, the conditioning builders and the synthetic data.

* Face: the 68 dlib/iBUG landmarks (jaw 0..16, brows 17..26, nose 27..35, eyes 36..47, mouth
  48..67), plus the 15 "upper face" points 68..82 the original synthesises (docs/conditioning.md).
* Body: OpenPose BODY_25 (25 points), OpenPose face (70 = 68 iBUG + 2 pupils) and hands (21 each).
* DensePose: part index I in 0..24 (0 = background), stored in channel 2 of the IUV image read as
  RGB.

The face parts, the OpenPose edge lists, their order and their colours are the original's: a
checkpoint trained on its renderings sees the same pixels here (docs/conditioning.md).
"""

from typing import Sequence

NUM_FACE_POINTS = 68
NUM_UPPER_FACE_POINTS = 15  # synthesised points 68..82

# Face parts for the edge maps and the part-label map, in drawing order. Each part: (label,
# edges); each edge is a list of landmark indices drawn as one curve; a part's polygon is its edges
# joined. The brows and the eyes are one part each side (filled separately, same label); the nose
# edges start at point 28, so point 27 is never drawn.
FACE_PARTS: tuple[tuple[int, tuple[tuple[int, ...], ...]], ...] = (
    (1, (tuple(range(0, 17)) + tuple(range(68, 83)) + (0,),)),  # face outline + upper face
    (2, (tuple(range(17, 22)),)),  # right eyebrow
    (2, (tuple(range(22, 27)),)),  # left eyebrow
    (3, ((28, 31), tuple(range(31, 36)), (35, 28))),  # nose
    (4, ((36, 37, 38, 39), (39, 40, 41, 36))),  # right eye
    (4, ((42, 43, 44, 45), (45, 46, 47, 42))),  # left eye
    (5, (tuple(range(48, 55)), (54, 55, 56, 57, 58, 59, 48))),  # outer mouth
    (6, ((60, 61, 62, 63, 64), (64, 65, 66, 67, 60))),  # inner mouth
)
FACE_EDGES: tuple[tuple[int, ...], ...] = tuple(e for _, edges in FACE_PARTS for e in edges)
assert len(FACE_EDGES) == 14

# ---------------------------------------------------------------- OpenPose BODY_25
BODY_25_NAMES = (
    'Nose', 'Neck', 'RShoulder', 'RElbow', 'RWrist', 'LShoulder', 'LElbow', 'LWrist', 'MidHip',
    'RHip', 'RKnee', 'RAnkle', 'LHip', 'LKnee', 'LAnkle', 'REye', 'LEye', 'REar', 'LEar',
    'LBigToe', 'LSmallToe', 'LHeel', 'RBigToe', 'RSmallToe', 'RHeel')
NUM_BODY_POINTS = 25
NUM_OPENPOSE_FACE_POINTS = 70
NUM_HAND_POINTS = 21
Limb = tuple[tuple[int, int], tuple[int, int, int]]  # (point pair, RGB colour)

# Head limbs (left out with basic_point_only), drawn first.
HEAD_LIMBS: tuple[Limb, ...] = (
    ((17, 15), (153, 0, 153)), ((15, 0), (153, 0, 102)),
    ((0, 16), (102, 0, 153)), ((16, 18), (51, 0, 153)))
# Body, arms and legs. The nose-neck colour (153, 0, 51) is also what the face discriminator's
# openpose_only crop looks for.
BODY_LIMBS: tuple[Limb, ...] = (
    ((0, 1), (153, 0, 51)), ((1, 8), (153, 0, 0)),
    ((1, 2), (153, 51, 0)), ((2, 3), (153, 102, 0)), ((3, 4), (153, 153, 0)),
    ((1, 5), (102, 153, 0)), ((5, 6), (51, 153, 0)), ((6, 7), (0, 153, 0)),
    ((8, 9), (0, 153, 51)), ((9, 10), (0, 153, 102)), ((10, 11), (0, 153, 153)),
    ((11, 24), (0, 153, 153)), ((11, 22), (0, 153, 153)), ((22, 23), (0, 153, 153)),
    ((8, 12), (0, 102, 153)), ((12, 13), (0, 51, 153)), ((13, 14), (0, 0, 153)),
    ((14, 21), (0, 0, 153)), ((14, 19), (0, 0, 153)), ((19, 20), (0, 0, 153)))
# Points that remove_face_labels jitters in training (nose, eyes, ears).
HEAD_POINTS = (0, 15, 16, 17, 18)

# Hands: 5 fingers from the wrist (point 0), 4 points each; one colour per finger.
HAND_FINGERS: tuple[tuple[tuple[int, ...], tuple[int, int, int]], ...] = (
    ((0, 1, 2, 3, 4), (204, 0, 0)), ((0, 5, 6, 7, 8), (163, 204, 0)),
    ((0, 9, 10, 11, 12), (0, 204, 82)), ((0, 13, 14, 15, 16), (0, 82, 204)),
    ((0, 17, 18, 19, 20), (163, 0, 204)))

# OpenPose face edges, drawn white in this order: brows, nose bridge, lower nose, eyes, outer
# mouth. A face edge counts only if all its points are confident (the jaw and pupils never do).
OPENPOSE_FACE_EDGES: tuple[tuple[int, ...], ...] = (
    tuple(range(17, 22)), tuple(range(22, 27)), tuple(range(27, 31)), tuple(range(31, 36)),
    (36, 37, 38, 39), (39, 40, 41, 36), (42, 43, 44, 45), (45, 46, 47, 42),
    tuple(range(48, 55)), (54, 55, 56, 57, 58, 59, 48))
# Confidence above which a point counts as detected.
BODY_CONFIDENCE = 0.01
HAND_CONFIDENCE = 0.01
FACE_CONFIDENCE = 0.1

# DensePose part indices used by the synthetic figure (the DensePose convention).
DENSEPOSE_PARTS = {
    'torso': 2, 'r_hand': 3, 'l_hand': 4, 'l_foot': 5, 'r_foot': 6,
    'r_upper_leg': 9, 'l_upper_leg': 10, 'r_lower_leg': 13, 'l_lower_leg': 14,
    'l_upper_arm': 15, 'r_upper_arm': 16, 'l_lower_arm': 19, 'r_lower_arm': 20,
    'head_right': 23, 'head_left': 24}
NUM_DENSEPOSE_PARTS = 24
DENSEPOSE_FACE_PARTS = (23, 24)


def flatten(groups: Sequence[Sequence[int]]) -> list[int]:
  """Concatenates index lists (a part's edges -> its polygon)."""
  return [i for group in groups for i in group]
