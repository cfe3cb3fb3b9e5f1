"""Keypoint conventions shared by the readers, the conditioning builders and the synthetic data.

* Face: the 68 dlib/iBUG landmarks (jaw 0..16, brows 17..26, nose 27..35, eyes 36..47, mouth
  48..67), plus the 15 "upper face" points 68..82 the original synthesises (spec 6.4).
* Body: OpenPose BODY_25 (25 points), OpenPose face (70 = 68 iBUG + 2 pupils) and hands (21 each).
* DensePose: part index I in 0..24 (0 = background), stored in channel 2 of the IUV image read as
  RGB (spec 6.1).

The OpenPose limb colours below are ours (spec 6.5 does not list the original's table), except the
nose-neck limb, whose colour (153, 0, 51) the face discriminator's openpose_only crop relies on
(spec 8.19). A checkpoint trained by the original on its OpenPose renderings therefore sees slightly
different colours here.
"""

from typing import Sequence

NUM_FACE_POINTS = 68
NUM_UPPER_FACE_POINTS = 15  # synthesised points 68..82

# Face parts for the edge maps and the part-label map (spec 6.4). Each part: (label, edges); each
# edge is a list of landmark indices drawn as one curve; the part polygon is all its edges joined.
FACE_PARTS: tuple[tuple[int, tuple[tuple[int, ...], ...]], ...] = (
    (1, (tuple(range(0, 17)) + tuple(range(68, 83)) + (0,),)),  # face outline
    (2, (tuple(range(17, 22)), tuple(range(22, 27)))),  # eyebrows
    (3, ((28, 31), tuple(range(31, 36)), (35, 28))),  # nose
    (4, ((36, 37, 38, 39), (39, 40, 41, 36), (42, 43, 44, 45), (45, 46, 47, 42))),  # eyes
    (5, (tuple(range(48, 55)), (54, 55, 56, 57, 58, 59, 48))),  # mouth
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

# 4 head pairs then 20 body/leg/foot pairs (spec 6.5), each with an RGB colour.
BODY_LIMBS: tuple[tuple[tuple[int, int], tuple[int, int, int]], ...] = (
    ((0, 15), (255, 0, 170)), ((15, 17), (170, 0, 255)),
    ((0, 16), (255, 0, 255)), ((16, 18), (85, 0, 255)),
    ((0, 1), (153, 0, 51)),  # nose-neck: the face D's openpose_only crop colour (spec 8.19)
    ((1, 2), (255, 85, 0)), ((2, 3), (255, 170, 0)), ((3, 4), (255, 255, 0)),
    ((1, 5), (170, 255, 0)), ((5, 6), (85, 255, 0)), ((6, 7), (0, 255, 0)),
    ((1, 8), (255, 0, 0)),
    ((8, 9), (0, 255, 85)), ((9, 10), (0, 255, 170)), ((10, 11), (0, 255, 255)),
    ((8, 12), (0, 170, 255)), ((12, 13), (0, 85, 255)), ((13, 14), (0, 0, 255)),
    ((14, 19), (0, 0, 170)), ((19, 20), (0, 0, 120)), ((14, 21), (0, 60, 170)),
    ((11, 22), (0, 170, 170)), ((22, 23), (0, 120, 120)), ((11, 24), (0, 170, 120)),
)
HEAD_POINTS = (0, 15, 16, 17, 18)

# Hands: 5 fingers from the wrist (point 0), 4 points each; one colour per finger.
HAND_FINGERS: tuple[tuple[tuple[int, ...], tuple[int, int, int]], ...] = (
    ((0, 1, 2, 3, 4), (255, 64, 64)), ((0, 5, 6, 7, 8), (255, 200, 64)),
    ((0, 9, 10, 11, 12), (64, 255, 64)), ((0, 13, 14, 15, 16), (64, 200, 255)),
    ((0, 17, 18, 19, 20), (200, 64, 255)))

# OpenPose face curves drawn in white (spec 6.5): brows, nose, eyes, outer mouth.
OPENPOSE_FACE_EDGES: tuple[tuple[int, ...], ...] = (
    tuple(range(17, 22)), tuple(range(22, 27)), tuple(range(27, 31)), tuple(range(31, 36)),
    (36, 37, 38, 39, 40, 41, 36), (42, 43, 44, 45, 46, 47, 42),
    tuple(range(48, 60)) + (48,))

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
