"""Procedural street, face and pose scenes for ``synthetic.py`` (layers of ``synthetic_render``).

Each builder takes a seeded NumPy generator, the number of frames and the frame size, and returns
the layers (plus, for face and pose, the per-frame keypoints in image pixels).

* street: Cityscapes labelIds (0..33) with one clear colour/texture per class; the sky stays put,
  the city (road with lane marks, sidewalk tiles, buildings with windows, trees, poles, signs)
  pans with the camera, people walk on the sidewalk and cars drive in two lanes (the near lane
  occludes the far one); the ego-vehicle bonnet is fixed. All motions are whole pixels per frame,
  so the flows are integers and warping with them is exact outside occlusions.
* face: one head (similarity motion: translation, roll, a little squash for yaw) whose 68 iBUG
  landmarks are animated with blinks and a mouth that opens (the lower lip is its own rigid layer).
* pose: an articulated figure of capsule limbs (one rigid layer per limb) walking/dancing, with
  BODY_25 + 70 face + 2x21 hand keypoints and a DensePose IUV rendering.
"""

import numpy as np

from input_pipeline import keypoints as kp
from input_pipeline import synthetic_render as sr
from input_pipeline.synthetic_render import Layer

# Cityscapes labelIds used by the street scenes.
EGO_VEHICLE, ROAD, SIDEWALK, BUILDING, POLE, TRAFFIC_SIGN, VEGETATION, SKY, PERSON, CAR = (
    1, 7, 8, 11, 17, 20, 21, 23, 24, 26)
CAR_COLOURS = ((200, 30, 30), (30, 70, 200), (230, 200, 30), (235, 235, 235))
SHIRT_COLOURS = ((220, 120, 30), (140, 40, 160), (40, 160, 150))


def _identity(num_frames: int) -> np.ndarray:
  return np.repeat(sr.translation(0, 0)[None], num_frames, axis=0)


# ---------------------------------------------------------------- street


def street_scene(rng: np.random.Generator, num_frames: int, height: int,
                 width: int) -> list[Layer]:
  """Street layers; see the module docstring. Frames are ``height`` x ``width`` pixels."""
  unit = max(1, round(width / 64))  # pixels per motion unit: 1 px/frame at 64 px wide
  pan_speed = int(rng.choice([-1, 0, 1, 1])) * unit
  pan = np.arange(num_frames) * pan_speed  # city moves by -pan: the camera pans right if > 0
  horizon, kerb = round(0.45 * height), round(0.6 * height)
  hood_top = height - max(1, round(0.07 * height))
  layers = []

  # Sky: at infinity, so it does not move with the camera pan.
  def paint_sky(u, v, t):
    grad = v / max(1, horizon)
    colour = np.stack([70 + 90 * grad, 130 + 60 * grad, 210 + 25 * grad], -1)
    cloud = sr.smooth_noise(u, v, 0.25 * width, seed=1) > 0.35
    colour = sr.blend(colour, (235, 240, 245), cloud)
    return np.ones(u.shape, bool), colour, SKY
  layers.append(Layer(paint_sky, _identity(num_frames), (0, 0, width, height)))

  # The city: world coordinates u = x + pan.
  u_lo = min(0, pan.min()) - width
  u_hi = max(0, pan.max()) + 2 * width
  edges = [u_lo]
  while edges[-1] < u_hi:
    edges.append(edges[-1] + rng.uniform(0.18, 0.4) * width)
  edges = np.array(edges)
  block_top = rng.uniform(0.05, 0.3, len(edges)) * height
  block_colour = np.array([(150, 110, 90), (170, 160, 140), (120, 110, 105), (190, 150, 110)],
                          np.float64)[rng.integers(0, 4, len(edges))]
  window = max(2.0, 0.05 * height)
  trees = [(u, rng.uniform(0.08, 0.13) * height) for u in
           np.arange(u_lo, u_hi, 0.35 * width) + rng.uniform(0, 0.3 * width)]
  trees = [(u, r) for u, r in trees if rng.random() < 0.6]
  poles = np.arange(u_lo, u_hi, 0.5 * width) + rng.uniform(0, 0.4 * width)
  pole_w = max(1.0, 0.006 * width)
  lane_y = kerb + 0.45 * (hood_top - kerb)
  dash = 0.2 * width

  def paint_city(u, v, t):
    label = np.zeros(u.shape, np.uint8)
    colour = np.zeros(u.shape + (3,), np.float64)
    noise = sr.smooth_noise(u, v, 0.1 * width, seed=2)
    # Road with dashed lane marks (still labelled road, as in Cityscapes).
    road = v >= kerb
    label[road] = ROAD
    colour[road] = sr.shade((85, 85, 92), 0.06 * noise[road])
    marks = road & (np.abs(v - lane_y) < max(0.6, 0.012 * height)) & (np.mod(u, dash) < dash / 2)
    colour[marks] = (235, 235, 225)
    # Sidewalk tiles.
    walk = (v >= horizon) & ~road
    label[walk] = SIDEWALK
    tile = max(2.0, 0.04 * width)
    grout = (np.mod(u, tile) < 0.8) | (np.mod(v - horizon, tile / 2) < 0.8)
    colour[walk] = sr.blend(sr.shade((190, 160, 170), 0.04 * noise[walk]), (150, 125, 135),
                            grout[walk])
    # Buildings with windows above the horizon.
    block = np.clip(np.searchsorted(edges, u) - 1, 0, len(edges) - 1)
    upper = v < horizon
    bld = upper & (v >= block_top[block])
    label[bld] = BUILDING
    colour[bld] = block_colour[block[bld]] * (1 + 0.05 * noise[bld])[:, None]
    bu = u - edges[block]
    glass = bld & (np.mod(bu, 2 * window) > 0.8 * window) & (
        np.mod(v - block_top[block], 1.6 * window) > 0.6 * window) & (v < horizon - window)
    colour[glass] = np.stack([50 + 30 * (v[glass] / height), 65 + 20 * noise[glass],
                              95 + 0 * v[glass]], -1)
    # Trees (crown + trunk) in front of the buildings.
    veg = np.zeros(u.shape, bool)
    for tu, radius in trees:
      cv = horizon - 1.6 * radius
      crown = (u - tu) ** 2 + (v - cv) ** 2 < radius ** 2
      trunk = (np.abs(u - tu) < max(0.6, 0.15 * radius)) & (v >= cv) & (v < horizon + 1)
      veg |= crown | trunk
      colour[trunk] = (95, 70, 45)
      leaf = crown & ~trunk
      colour[leaf] = sr.shade((60, 125, 40), 0.3 * sr.smooth_noise(u[leaf], v[leaf],
                                                                   0.2 * radius + 1, seed=3))
    label[veg] = VEGETATION
    # Poles standing on the sidewalk, some with a sign.
    for i, pu in enumerate(poles):
      pole = (np.abs(u - pu) < pole_w) & (v > 0.15 * height) & (v < kerb - 0.3 * (kerb - horizon))
      label[pole] = POLE
      colour[pole] = (125, 125, 130)
      if i % 2 == 0:
        sign = (np.abs(u - pu) < 2.5 * pole_w + 0.5) & (np.abs(v - 0.2 * height) < 0.04 * height)
        label[sign] = TRAFFIC_SIGN
        colour[sign] = (235, 200, 40)
    return label > 0, colour, label
  city_transforms = np.stack([sr.translation(-p, 0) for p in pan])
  layers.append(Layer(paint_city, city_transforms, (u_lo, 0, u_hi, height)))

  # People on the sidewalk (behind the cars) and cars in two lanes.
  def person(shirt, w, h):
    def paint(u, v, t):
      head = (u - w / 2) ** 2 + (v - 0.12 * h) ** 2 < (0.12 * h) ** 2
      torso = (np.abs(u - w / 2) < w / 2) & (v >= 0.22 * h) & (v < 0.6 * h)
      legs = (np.abs(np.abs(u - w / 2) - 0.25 * w) < 0.2 * w) & (v >= 0.6 * h) & (v <= h)
      colour = np.zeros(u.shape + (3,))
      colour[head] = (225, 180, 150)
      colour[torso] = sr.shade(shirt, 0.2 * (v[torso] / h - 0.4))
      colour[legs] = (45, 45, 80)
      return head | torso | legs, colour, PERSON
    return paint

  def car(body, length, h):
    def paint(u, v, t):
      lower = (v >= 0.38 * h) & (v < 0.85 * h) & (u >= 0) & (u <= length)
      slope = 0.18 * length * (1 - v / (0.38 * h))
      cabin = (v >= 0) & (v < 0.38 * h) & (u >= 0.2 * length + slope) & (u <= 0.8 * length - slope)
      glass = cabin & (v > 0.08 * h) & (np.abs(u - length / 2) > 0.02 * length + 0.5)
      wheel = np.zeros(u.shape, bool)
      for wu in (0.22 * length, 0.78 * length):
        wheel |= (u - wu) ** 2 + (v - 0.82 * h) ** 2 < (0.17 * h) ** 2
      colour = np.zeros(u.shape + (3,))
      body_px = (lower | cabin) & ~glass
      colour[body_px] = sr.shade(body, 0.25 * (0.5 - v[body_px] / h))
      colour[glass] = (40, 50, 70)
      colour[wheel] = (20, 20, 20)
      return lower | cabin | wheel, colour, CAR
    return paint

  def mover(x0, speed, y):
    return np.stack([sr.translation(x0 + speed * t - pan[t], y) for t in range(num_frames)])

  person_h = max(4, round(0.22 * height))
  person_w = max(2, round(0.35 * person_h))
  for k in range(int(rng.integers(1, 3))):
    speed = int(rng.choice([-1, 1])) * unit
    x0 = int(rng.integers(0, width)) + int(pan[num_frames // 2]) - speed * num_frames // 2
    feet = int(rng.integers(horizon + 1, kerb))
    layers.append(Layer(person(SHIRT_COLOURS[k % 3], person_w, person_h),
                        mover(x0, speed, feet - person_h), (0, 0, person_w, person_h),
                        inst=PERSON * 1000 + k))
  car_index = 0
  for lane, scale in ((0, 0.85), (1, 1.0)):
    car_h = max(4, round(0.22 * height * scale))
    car_len = max(8, round(0.28 * width * scale))
    lane_speed = (-1 if lane == 0 else 1) * unit
    top = round(kerb + (0.05 + 0.35 * lane) * (hood_top - kerb)) - car_h // 2
    for j in range(int(rng.integers(1, 3))):
      speed = lane_speed + int(rng.integers(0, 2)) * lane_speed
      # Visible around the middle of the clip, entering/leaving at the borders.
      x_mid = int(rng.uniform(-0.2, 0.9) * width) + int(j * 0.6 * width)
      x0 = x_mid + int(pan[num_frames // 2]) - (speed * num_frames) // 2
      colour = CAR_COLOURS[int(rng.integers(0, len(CAR_COLOURS)))]
      layers.append(Layer(car(colour, car_len, car_h), mover(x0, speed, top),
                          (0, 0, car_len, car_h), inst=CAR * 1000 + car_index))
      car_index += 1

  # Ego-vehicle bonnet, fixed to the camera.
  def paint_hood(u, v, t):
    curve = hood_top + 0.03 * height * ((2 * u / width - 1) ** 2)
    mask = v >= curve
    colour = sr.shade((35, 35, 40), 0.3 * (1 - (2 * u / width - 1) ** 2))
    return mask, colour, EGO_VEHICLE
  layers.append(Layer(paint_hood, _identity(num_frames), (0, hood_top - 1, width, height)))
  return layers


# ---------------------------------------------------------------- face


def _ellipse(u, v, cu, cv, ru, rv):
  return ((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2 <= 1


def _brow_y(u, centre):
  return -0.36 - 0.09 * (1 - ((u - centre) / 0.33) ** 2)


def _eye_lids(u, centre):
  """Upper and lower lid curves of an open eye (canonical face units)."""
  t = np.clip((u - centre) / 0.2, -1, 1)
  return -0.085 * (1 - t ** 2), 0.07 * (1 - t ** 2)


def _lip_curves(u):
  t = np.clip(u / 0.4, -1, 1)
  upper_top = 0.9 - 0.09 * (1 - t ** 2) + 0.02 * np.exp(-(u / 0.05) ** 2)
  upper_bottom = 0.9 + 0.012 * (1 - t ** 2)
  lower_top = 0.89 + 0 * u
  lower_bottom = 0.9 + 0.1 * (1 - t ** 2)
  return upper_top, upper_bottom, lower_top, lower_bottom


def face_template(mouth_open: float = 0.0, blink: float = 0.0) -> np.ndarray:
  """[68, 2] canonical iBUG landmarks (face units: jaw from x=-1 to 1, eyes at y~0, chin 1.4).

  Args:
    mouth_open: lower-lip drop in face units (0 = closed).
    blink: 0 = open eyes, 1 = closed.
  """
  pts = np.zeros((68, 2))
  theta = np.pi * np.arange(17) / 16
  pts[0:17] = np.stack([-np.cos(theta), 0.05 + 1.35 * np.sin(theta)], -1)
  for start, centre in ((17, -0.475), (22, 0.475)):
    us = centre + np.linspace(-0.33, 0.33, 5)
    pts[start:start + 5] = np.stack([us, _brow_y(us, centre)], -1)
  pts[27:31] = np.stack([np.zeros(4), np.linspace(-0.05, 0.46, 4)], -1)
  pts[31:36] = [(-0.2, 0.55), (-0.1, 0.58), (0, 0.6), (0.1, 0.58), (0.2, 0.55)]
  for start, centre, sign in ((36, -0.45, -1), (42, 0.45, 1)):
    order = np.array([-1, -0.35, 0.35, 1, 0.35, -0.35]) * 0.2
    if sign > 0:  # the left eye starts at its inner corner
      order = -order
    us = centre + order
    up, low = _eye_lids(us, centre)
    lid = up + blink * (low - up) * 0.9
    pts[start:start + 6] = np.stack([us, np.r_[lid[:3], low[3], low[4:]]], -1)
    pts[start, 1] = pts[start + 3, 1] = 0.0
  mu = np.array([-0.4, -0.27, -0.13, 0, 0.13, 0.27, 0.4, 0.27, 0.13, 0, -0.13, -0.27])
  ut, _, _, lb = _lip_curves(mu)
  pts[48:60] = np.stack([mu, np.r_[ut[:7], lb[7:] + mouth_open]], -1)
  pts[48, 1] = pts[54, 1] = 0.9 + mouth_open / 3
  iu = np.array([-0.3, -0.15, 0, 0.15, 0.3, 0.15, 0, -0.15])
  _, ub, lt, _ = _lip_curves(iu)
  pts[60:68] = np.stack([iu, np.r_[ub[:5], lt[5:] + mouth_open]], -1)
  pts[60, 1] = pts[64, 1] = 0.9 + mouth_open / 3
  return pts


def face_scene(rng: np.random.Generator, num_frames: int, height: int,
               width: int) -> tuple[list[Layer], np.ndarray]:
  """Face layers and landmarks [T, 68, 2] float64 in image pixels (x, y)."""
  side = min(height, width)
  scale = 0.19 * side
  phase = rng.uniform(0, 2 * np.pi, 6)
  t = np.arange(num_frames)
  roll = 0.07 * np.sin(2 * np.pi * t / 23 + phase[0])
  yaw = 0.08 * np.sin(2 * np.pi * t / 31 + phase[1])
  cx = width / 2 + 0.05 * width * np.sin(2 * np.pi * t / 37 + phase[2])
  cy = 0.42 * height + 0.03 * height * np.sin(2 * np.pi * t / 29 + phase[3])
  mouth = np.maximum(0, 0.2 * np.sin(2 * np.pi * t / rng.uniform(8, 14) + phase[4]))
  blink = np.zeros(num_frames)
  for start in range(int(rng.integers(2, 6)), num_frames, int(rng.integers(9, 15))):
    blink[start] = 1.0
    if start + 1 < num_frames:
      blink[start + 1] = 0.5
  head = np.stack([sr.similarity(scale * (1 - yaw[i]), scale, roll[i], cx[i], cy[i])
                   for i in range(num_frames)])
  lower_lip = np.stack([sr.compose(head[i], sr.translation(0, mouth[i]))
                        for i in range(num_frames)])
  skin = np.array((225, 180, 150)) * rng.uniform(0.8, 1.05)
  hair = np.array((70, 45, 30)) * rng.uniform(0.5, 1.5)
  layers = []

  def paint_background(u, v, tt):
    noise = sr.smooth_noise(u, v, 0.3 * side, seed=4)
    colour = np.stack([150 + 30 * noise, 170 + 20 * v / height + 0 * u, 185 - 20 * noise], -1)
    return np.ones(u.shape, bool), colour, 0
  layers.append(Layer(paint_background, _identity(num_frames), (0, 0, width, height)))

  def paint_hair(u, v, tt):
    mask = _ellipse(u, v, 0, -0.3, 1.18, 1.1) & (v < 0.5)
    return mask, sr.shade(hair, 0.15 * np.sin(u * 25)), 0
  layers.append(Layer(paint_hair, head, (-1.3, -1.5, 1.3, 0.6)))

  def paint_neck(u, v, tt):
    neck = (np.abs(u) < 0.45) & (v > 0.9)
    shirt = (v > 2.0 - 0.3 * np.abs(u)) & (np.abs(u) < 2.2)
    colour = sr.blend(sr.shade(skin, -0.15 + 0 * u), (50, 80, 140), shirt)
    return neck | shirt, colour, 0
  layers.append(Layer(paint_neck, head, (-2.2, 0.9, 2.2, 3.5)))

  def paint_face(u, v, tt):
    mask = np.where(v < 0.05, _ellipse(u, v, 0, 0.05, 1.0, 1.05),
                    _ellipse(u, v, 0, 0.05, 1.0, 1.35))
    r2 = u ** 2 + ((v - 0.2) / 1.2) ** 2
    colour = sr.shade(skin, -0.15 * r2 + 0.06 * np.exp(-((np.abs(u) - 0.55) ** 2 +
                                                        (v - 0.45) ** 2) / 0.03))
    fringe = v < -0.72 + 0.08 * np.sin(u * 9)
    colour = sr.blend(colour, hair, fringe)
    return mask, colour, 0
  layers.append(Layer(paint_face, head, (-1.05, -1.05, 1.05, 1.45)))

  def paint_brows(u, v, tt):
    mask = np.zeros(u.shape, bool)
    for centre in (-0.475, 0.475):
      mask |= (np.abs(u - centre) <= 0.34) & (np.abs(v - _brow_y(u, centre)) < 0.045)
    return mask, sr.shade(hair, -0.3 + 0 * u), 0
  layers.append(Layer(paint_brows, head, (-0.85, -0.5, 0.85, -0.28)))

  def paint_eyes(u, v, tt):
    mask = np.zeros(u.shape, bool)
    colour = np.zeros(u.shape + (3,))
    for centre in (-0.45, 0.45):
      up, low = _eye_lids(u, centre)
      eye = (np.abs(u - centre) < 0.2) & (v >= up) & (v <= low)
      mask |= eye
      colour[eye] = (240, 238, 232)
      d2 = (u - centre) ** 2 + v ** 2
      colour[eye & (d2 < 0.075 ** 2)] = (60, 100, 70)
      colour[eye & (d2 < 0.035 ** 2)] = (15, 15, 15)
    return mask, colour, 0
  layers.append(Layer(paint_eyes, head, (-0.7, -0.1, 0.7, 0.1)))

  def paint_lids(u, v, tt):
    mask = np.zeros(u.shape, bool)
    for centre in (-0.45, 0.45):
      up, low = _eye_lids(u, centre)
      lid = up + blink[tt] * (low - up)
      mask |= (np.abs(u - centre) < 0.2) & (v >= up) & (v < lid)
    return mask, sr.shade(skin, -0.1 + 0 * u), 0
  layers.append(Layer(paint_lids, head, (-0.7, -0.1, 0.7, 0.1), rigid=False))

  def paint_nose(u, v, tt):
    nostrils = _ellipse(u, v, -0.11, 0.55, 0.06, 0.03) | _ellipse(u, v, 0.11, 0.55, 0.06, 0.03)
    side = (np.abs(np.abs(u) - 0.13) < 0.03) & (v > 0.1) & (v < 0.5)
    colour = sr.blend(sr.shade(skin, -0.12 + 0 * u), (90, 50, 40), nostrils)
    return nostrils | side, colour, 0
  layers.append(Layer(paint_nose, head, (-0.3, 0.05, 0.3, 0.62)))

  def paint_mouth(u, v, tt):
    mask = _ellipse(u, v, 0, 0.97, 0.33, 0.2)
    colour = sr.blend(np.tile([[90, 25, 30]], (u.size, 1)).astype(float), (235, 230, 220),
                      v < 0.93)
    return mask, colour, 0
  layers.append(Layer(paint_mouth, head, (-0.35, 0.75, 0.35, 1.2)))

  def paint_upper_lip(u, v, tt):
    top, bottom, _, _ = _lip_curves(u)
    mask = (np.abs(u) <= 0.4) & (v >= top) & (v <= bottom)
    return mask, sr.shade((185, 85, 85), 0 * u), 0
  layers.append(Layer(paint_upper_lip, head, (-0.42, 0.78, 0.42, 0.93)))

  def paint_lower_lip(u, v, tt):
    _, _, top, bottom = _lip_curves(u)
    mask = (np.abs(u) <= 0.4) & (v >= top) & (v <= bottom)
    return mask, sr.shade((170, 70, 75), 0.3 * (v - 0.9)), 0
  layers.append(Layer(paint_lower_lip, lower_lip, (-0.42, 0.86, 0.42, 1.02)))

  landmarks = np.stack([
      np.stack(sr.apply_affine(head[i], *face_template(mouth[i], blink[i]).T), -1)
      for i in range(num_frames)])
  return layers, landmarks


# ---------------------------------------------------------------- pose


def _limb_transform(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  d = b - a
  length = max(np.hypot(*d), 1e-6)
  c, s = d / length
  return np.array([[c, -s, a[0]], [s, c, a[1]]])


def pose_scene(rng: np.random.Generator, num_frames: int, height: int,
               width: int) -> tuple[list[Layer], dict[str, np.ndarray]]:
  """Figure layers and keypoints in image pixels.

  Returns:
    layers, and {'body': [T, 25, 3], 'face': [T, 70, 3], 'hand_left': [T, 21, 3],
    'hand_right': [T, 21, 3]} as (x, y, confidence); undetected points are (0, 0, 0).
  """
  unit = 0.8 * height / 7.5  # one head height
  t = np.arange(num_frames)
  phase = rng.uniform(0, 2 * np.pi, 4)
  omega = 2 * np.pi / rng.uniform(10, 16)
  speed = rng.uniform(-0.006, 0.006) * width
  hip = np.stack([width / 2 + speed * (t - num_frames / 2),
                  0.55 * height + 0.05 * unit * np.sin(2 * omega * t + phase[0])], -1)
  lean = 0.05 * np.sin(omega * t + phase[1])
  swing = np.sin(omega * t + phase[2])
  raise_arms = 0.5 + 0.5 * np.sin(0.5 * omega * t + phase[3])
  shirt = np.array(SHIRT_COLOURS[int(rng.integers(0, 3))], np.float64)
  trousers = np.array((40, 50, 90)) * rng.uniform(0.7, 1.3)
  skin = np.array((220, 175, 145))

  def rot(angle):
    return np.array([np.sin(angle), np.cos(angle)])  # 0 = straight down

  joints = {name: np.zeros((num_frames, 2)) for name in kp.BODY_25_NAMES}
  head_centre = np.zeros((num_frames, 2))
  for i in range(num_frames):
    up = -rot(lean[i])
    neck = hip[i] + 2.6 * unit * up
    side = np.array([-up[1], up[0]]) * -1  # image-left = the figure's right (it faces us)
    joints['MidHip'][i], joints['Neck'][i] = hip[i], neck
    head_centre[i] = neck + 0.85 * unit * up
    for sign, prefix, arm_phase in ((1, 'R', 0.0), (-1, 'L', np.pi)):
      shoulder = neck + sign * 0.9 * unit * side
      # Upper-arm angle from straight down; outwards is -x for the right arm (image left).
      arm = -sign * (0.25 + 1.4 * raise_arms[i] + 0.25 * np.sin(omega * t[i] + arm_phase))
      elbow = shoulder + 1.4 * unit * rot(arm)
      wrist = elbow + 1.2 * unit * rot(arm - sign * 0.5)
      hip_j = hip[i] + sign * 0.5 * unit * side
      leg = 0.35 * (swing[i] if sign > 0 else -swing[i])
      knee = hip_j + 1.9 * unit * rot(leg)
      ankle = knee + 1.8 * unit * rot(leg - 0.3 * max(0, -leg / 0.35))
      joints[prefix + 'Shoulder'][i], joints[prefix + 'Elbow'][i] = shoulder, elbow
      joints[prefix + 'Wrist'][i], joints[prefix + 'Hip'][i] = wrist, hip_j
      joints[prefix + 'Knee'][i], joints[prefix + 'Ankle'][i] = knee, ankle
      toe_dir = np.array([-sign * 0.5, 0.15])
      joints[prefix + 'BigToe'][i] = ankle + unit * (toe_dir + [sign * 0.05, 0.25])
      joints[prefix + 'SmallToe'][i] = ankle + unit * (toe_dir + [sign * 0.2, 0.25])
      joints[prefix + 'Heel'][i] = ankle + unit * np.array([sign * 0.15, 0.3])
  head = np.stack([sr.similarity(0.42 * unit, 0.42 * unit, lean[i] * 2, *head_centre[i])
                   for i in range(num_frames)])

  layers = []

  def paint_background(u, v, tt):
    floor = v > 0.82 * height
    colour = np.stack([200 + 15 * sr.smooth_noise(u, v, 0.3 * width, 5), 190 + 0 * u,
                       165 + 10 * np.sin(u / max(1, 0.05 * width))], -1)
    colour = sr.blend(colour, (140, 105, 80), floor)
    return np.ones(u.shape, bool), colour, 0
  layers.append(Layer(paint_background, _identity(num_frames), (0, 0, width, height)))

  def capsule(start, end, radius, base, part, stripes=False):
    length = np.hypot(*(joints[end][0] - joints[start][0]))
    transforms = np.stack([_limb_transform(joints[start][i], joints[end][i])
                           for i in range(num_frames)])

    def paint(u, v, tt):
      mask = (((u >= 0) & (u <= length) & (np.abs(v) <= radius)) |
              (u ** 2 + v ** 2 <= radius ** 2) | ((u - length) ** 2 + v ** 2 <= radius ** 2))
      amount = -0.25 * (v / radius) ** 2
      if stripes:
        amount = amount + 0.12 * np.sin(2 * np.pi * u / (0.6 * unit))
      return mask, sr.shade(base, amount), 0

    def iuv(u, v, tt):
      uu = np.clip(u / length, 0, 1) * 255
      vv = np.clip((v / radius + 1) / 2, 0, 1) * 255
      return np.stack([vv, uu, np.full(u.shape, part)], -1).astype(np.uint8)
    return Layer(paint, transforms, (-radius, -radius, length + radius, radius), iuv=iuv)

  def disc(centre_joint, radius, base, part):
    transforms = np.stack([sr.translation(*joints[centre_joint][i]) for i in range(num_frames)])

    def paint(u, v, tt):
      r2 = (u ** 2 + v ** 2) / radius ** 2
      return r2 <= 1, sr.shade(base, -0.2 * r2), 0

    def iuv(u, v, tt):
      return np.stack([(v / radius + 1) * 127, (u / radius + 1) * 127,
                       np.full(u.shape, part)], -1).astype(np.uint8)
    return Layer(paint, transforms, (-radius, -radius, radius, radius), iuv=iuv)

  parts = kp.DENSEPOSE_PARTS
  def arm(p, s):
    return [capsule(p + 'Shoulder', p + 'Elbow', 0.3 * unit, shirt, parts[s + '_upper_arm'], True),
            capsule(p + 'Elbow', p + 'Wrist', 0.22 * unit, skin, parts[s + '_lower_arm']),
            disc(p + 'Wrist', 0.25 * unit, skin, parts[s + '_hand'])]

  def leg(p, s):
    return [capsule(p + 'Hip', p + 'Knee', 0.38 * unit, trousers, parts[s + '_upper_leg']),
            capsule(p + 'Knee', p + 'Ankle', 0.3 * unit, trousers, parts[s + '_lower_leg']),
            capsule(p + 'Heel', p + 'BigToe', 0.18 * unit, (30, 30, 30), parts[s + '_foot'])]

  def paint_head(u, v, tt):
    mask = u ** 2 + v ** 2 <= 1.3 ** 2
    colour = sr.shade(skin, -0.1 * (u ** 2 + v ** 2))
    colour = sr.blend(colour, (60, 40, 30), v < -0.55 + 0.1 * np.sin(6 * u))
    eyes = _ellipse(np.abs(u), v, 0.45, 0, 0.12, 0.07)
    colour = sr.blend(colour, (30, 30, 30), eyes)
    colour = sr.blend(colour, (170, 70, 70), _ellipse(u, v, 0, 0.85, 0.3, 0.07))
    return mask, colour, 0

  def head_iuv(u, v, tt):
    part = np.where(u < 0, parts['head_right'], parts['head_left'])
    return np.stack([np.clip((v / 1.3 + 1) * 127, 0, 255), np.clip((u / 1.3 + 1) * 127, 0, 255),
                     part], -1).astype(np.uint8)

  torso = capsule('Neck', 'MidHip', 0.8 * unit, shirt, parts['torso'], True)
  layers += arm('L', 'l') + leg('L', 'l') + [torso] + leg('R', 'r')
  layers.append(Layer(paint_head, head, (-1.3, -1.3, 1.3, 1.3), iuv=head_iuv))
  layers += arm('R', 'r')

  # Keypoints. Face/eyes/ears from the head transform; hands fan out along the forearm.
  face = np.zeros((num_frames, 70, 3))
  hands = {'R': np.zeros((num_frames, 21, 3)), 'L': np.zeros((num_frames, 21, 3))}
  template = face_template() * np.array([0.75, 0.6]) + np.array([0, -0.15])
  for i in range(num_frames):
    pts = np.stack(sr.apply_affine(head[i], *template.T), -1)
    pupils = np.stack(sr.apply_affine(head[i], np.array([-0.34, 0.34]),
                                      np.array([-0.15, -0.15])), -1)
    face[i, :, :2] = np.concatenate([pts, pupils])
    face[i, :, 2] = 0.8
    x = sr.apply_affine(head[i], np.array([0, -0.34, 0.34, -1.0, 1.0]),
                        np.array([0.3, -0.15, -0.15, 0, 0]))
    for name, px, py in zip(('Nose', 'REye', 'LEye', 'REar', 'LEar'), *x):
      joints[name][i] = (px, py)
    for p in 'RL':
      wrist, elbow = joints[p + 'Wrist'][i], joints[p + 'Elbow'][i]
      direction = (wrist - elbow) / max(1e-6, np.hypot(*(wrist - elbow)))
      hands[p][i, 0, :2] = wrist
      for f in range(5):
        angle = (f - 2) * 0.3
        c, s = np.cos(angle), np.sin(angle)
        d = np.array([c * direction[0] - s * direction[1], s * direction[0] + c * direction[1]])
        for j in range(4):
          hands[p][i, 1 + 4 * f + j, :2] = wrist + d * unit * (0.12 + 0.08 * j)
      hands[p][i, :, 2] = 0.7
  body = np.zeros((num_frames, 25, 3))
  for k, name in enumerate(kp.BODY_25_NAMES):
    body[:, k, :2] = joints[name]
    body[:, k, 2] = 0.9
  out = {'body': body, 'face': face, 'hand_left': hands['L'], 'hand_right': hands['R']}
  for value in out.values():  # points off the frame are not detected
    outside = ((value[..., 0] < 0) | (value[..., 0] > width - 1) | (value[..., 1] < 0) |
               (value[..., 1] > height - 1))
    value[outside] = 0
  return layers, out
