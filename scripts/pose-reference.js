#!/usr/bin/env node
/*
 * Independent head-pose reference (yaw, pitch, roll) for the labelled corpus, computed by
 * @vladmandic/human 3.3.6 (MIT) under Node.js: BlazeFace detector + MediaPipe FaceMesh (468 3D
 * points, + iris -> 478) -> face.rotation.angle {pitch, yaw, roll} (radians) and
 * face.rotation.gaze {bearing, strength}. Used to calibrate / validate veridoc's own yaw / pitch
 * estimate from the 68 face-api landmarks. Run through scripts/pose-reference.sh, which installs
 * the npm packages, decodes the photos and passes the paths below; running this file by hand:
 *
 *   node scripts/pose-reference.js --modules fixtures/node-human --decoded DIR \
 *        --out fixtures/reference/pose.json [--backend wasm|cpu] [--mirror a.jpg,b.jpg|all] \
 *        [--labels fixtures/corpus/labels.json]
 *
 * DIR holds index.json ({photos: [{name, file, width, height, ...}]}) and one <name>.rgb per photo
 * (packed RGB8, row-major, EXIF orientation applied), as made by pose-reference.sh.
 *
 * How Human computes the angles (src/face/angles.ts, calculateFaceAngle; read from the installed
 * 3.3.6 package): only FOUR mesh points are used, 10 (top of forehead), 152 (chin), 234 and 454
 * (the two face-contour points at the cheek / ear level, 234 on the image-left side of an upright
 * frontal face). x and y are the photo-normalised mesh coordinates scaled by image size / (max box
 * side / 1.5), z is the mesh's raw depth / 256. yAxis = normalize(p152 - p10), xAxis =
 * normalize(p454 - p234), zAxis = normalize(xAxis x yAxis), xAxis = yAxis x zAxis; the matrix has
 * rows xAxis, yAxis, zAxis; Euler (YZX, geometrictools): thetaZ = atan2(r10, sqrt(r00^2 + r20^2)),
 * thetaY = atan2(-r20, r00), thetaX = atan2(-r12, r11); result {pitch: -thetaX, yaw: -thetaY,
 * roll: -thetaZ}. The sign conventions that follow from this are measured (mirrored copies and the
 * corpus' constructed roll labels) and written to the JSON's "conventions".
 *
 * Models are loaded from the package's models/ folder through a file:// IO router registered
 * here (the tfjs-node file handler is not available under the wasm build and Node's fetch does not
 * do file://); the wasm binaries come from the installed @tensorflow/tfjs-backend-wasm (Human's
 * default wasmPath is a CDN).
 */
'use strict';

const fs = require('fs');
const path = require('path');
const { createRequire } = require('module');

// ---------------------------------------------------------------- arguments
const args = { backend: 'wasm', mirror: '' };
// --labels: the corpus labels.json (for the roll sign check); optional
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i].replace(/^--/, '');
  if (!['modules', 'decoded', 'out', 'backend', 'mirror', 'labels'].includes(k) || i + 1 >= process.argv.length) {
    console.error(`usage: pose-reference.js --modules DIR --decoded DIR --out FILE [--backend wasm|cpu] [--mirror LIST|all] [--labels FILE] (bad: ${process.argv[i]})`);
    process.exit(2);
  }
  args[k] = process.argv[i + 1];
}
for (const k of ['modules', 'decoded', 'out']) {
  if (!args[k]) { console.error(`pose-reference.js: --${k} is required`); process.exit(2); }
}

const req = createRequire(path.resolve(args.modules, 'package.json'));
// (human's package.json "exports" spells its subpaths without "./", so Node refuses
// '@vladmandic/human/dist/human.node-wasm.js': load the file by its path instead)
const HUMAN_DIR = path.resolve(args.modules, 'node_modules/@vladmandic/human');
const H = req(path.join(HUMAN_DIR, 'dist/human.node-wasm.js')); // requires tfjs-core / converter / backend-wasm
req('@tensorflow/tfjs-backend-cpu'); // registers 'cpu' (fallback) on the same tfjs-core instance
const WASM_DIR = path.resolve(args.modules, 'node_modules/@tensorflow/tfjs-backend-wasm/dist');
const MODELS_DIR = path.join(HUMAN_DIR, 'models');
const HUMAN_VERSION = JSON.parse(fs.readFileSync(path.join(HUMAN_DIR, 'package.json'), 'utf8')).version;

const DEG = 180 / Math.PI;
const r4 = (v) => Math.round(v * 1e4) / 1e4;

function config(backend) {
  return {
    backend,
    modelBasePath: `file://${MODELS_DIR}/`,
    wasmPath: `${WASM_DIR}/`,
    wasmPlatformFetch: false,
    debug: false,
    async: true,
    warmup: 'none',
    cacheSensitivity: 0, // every photo is a new scene: no frame-to-frame caching / skipping
    cacheModels: false,
    filter: { enabled: false }, // tensor input is used as-is anyway (no imagefx filters)
    gesture: { enabled: false },
    face: {
      enabled: true,
      detector: { rotation: true, maxDetected: 10, minConfidence: 0.2, iouThreshold: 0.1, return: false, skipFrames: 0, skipTime: 0 },
      mesh: { enabled: true },
      iris: { enabled: true },
      attention: { enabled: false },
      emotion: { enabled: false },
      description: { enabled: false },
      antispoof: { enabled: false },
      liveness: { enabled: false },
    },
    body: { enabled: false },
    hand: { enabled: false },
    object: { enabled: false },
    segmentation: { enabled: false },
  };
}

// file:// load router for tf.io: model.json + its weight shards from disk
function registerFileRouter(tf) {
  tf.io.registerLoadRouter((url) => {
    const u = Array.isArray(url) ? url[0] : url;
    if (typeof u !== 'string' || !u.startsWith('file://')) return null;
    const file = u.slice('file://'.length);
    return {
      load: async () => {
        const json = JSON.parse(fs.readFileSync(file, 'utf8'));
        const dir = path.dirname(file);
        return tf.io.getModelArtifactsForJSON(json, async (manifest) => {
          const specs = [];
          const bufs = [];
          for (const group of manifest) {
            specs.push(...group.weights);
            for (const p of group.paths) bufs.push(fs.readFileSync(path.join(dir, p)));
          }
          const all = Buffer.concat(bufs);
          return [specs, all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength)];
        });
      },
    };
  });
}

function summarise(face, W, H) {
  const a = face.rotation.angle;
  const M = face.mesh; // photo px (x, y), z = mesh depth (smaller = nearer the camera)
  const cx = (M[234][0] + M[454][0]) / 2;
  const span = Math.hypot(M[454][0] - M[234][0], M[454][1] - M[234][1]);
  return {
    yaw_deg: r4(a.yaw * DEG),
    pitch_deg: r4(a.pitch * DEG),
    roll_deg: r4(a.roll * DEG),
    box: face.box.map(r4),
    score: face.score,
    box_score: face.boxScore,
    mesh_score: face.faceScore,
    gaze: { bearing_deg: r4(face.rotation.gaze.bearing * DEG), strength: r4(face.rotation.gaze.strength) },
    matrix: face.rotation.matrix.map(r4),
    mesh_points: M.length,
    // the four mesh points the angles come from + the nose tip (1): [x px, y px, z]
    pose_points: Object.fromEntries([1, 10, 152, 234, 454].map((k) => [k, M[k].map(r4)])),
    // 2D cue, independent of Human's Euler code: nose tip x minus the midpoint of the contour
    // points 234 / 454, over their distance (> 0: nose right of the face centre in the image)
    nose_offset: r4((M[1][0] - cx) / span),
    // atan2(dy, dx) in degrees of the image line from mesh 33 (image-left outer eye corner of an
    // upright face) to 263 (image-right outer corner), y down: the corpus labels' roll_deg definition
    eye_line_deg: r4(Math.atan2(M[263][1] - M[33][1], M[263][0] - M[33][0]) * DEG),
  };
}

async function run(human, tf, meta, mirror) {
  const { width: W, height: H } = meta;
  const bytes = fs.readFileSync(path.join(args.decoded, meta.file));
  if (bytes.length !== W * H * 3) throw new Error(`${meta.name}: expected ${W * H * 3} bytes, got ${bytes.length}`);
  let img = tf.tensor4d(Int32Array.from(bytes), [1, H, W, 3], 'int32');
  if (mirror) {
    const flipped = tf.reverse(img, 2); // left-right
    img.dispose();
    img = flipped;
  }
  const res = await human.detect(img);
  img.dispose();
  const faces = res.face.filter((f) => f.rotation && f.mesh.length >= 468);
  const entry = { faces: faces.length };
  if (faces.length) {
    const biggest = faces.reduce((b, f) => (f.box[2] * f.box[3] > b.box[2] * b.box[3] ? f : b));
    Object.assign(entry, summarise(biggest, W, H));
    if (faces.length > 1) {
      entry.other_faces = faces.filter((f) => f !== biggest).map((f) => ({
        box: f.box.map(r4), score: f.score, yaw_deg: r4(f.rotation.angle.yaw * DEG), pitch_deg: r4(f.rotation.angle.pitch * DEG), roll_deg: r4(f.rotation.angle.roll * DEG),
      }));
    }
  }
  entry.width = W;
  entry.height = H;
  return entry;
}

const mean = (a) => (a.length ? a.reduce((s, v) => s + v, 0) / a.length : null);
const rn = (v) => (v == null ? null : r4(v));

// Sign conventions, measured on this run's results (not assumed)
function conventions(photos, mirrorPairs, labels) {
  const rows = Object.entries(photos).filter(([, p]) => p.faces);
  const count = (list, pred) => list.filter(pred).length;

  // depth convention of the mesh: the nose tip (1) must be the point nearest the camera
  const noseNearer = count(rows, ([, p]) => p.pose_points[1][2] < Math.min(p.pose_points[234][2], p.pose_points[454][2]));
  // yaw: Human's yaw vs the 2D nose offset (|yaw| > 3 deg)
  const yawRows = rows.filter(([, p]) => Math.abs(p.yaw_deg) > 3);
  const yawNoseLeft = count(yawRows, ([, p]) => Math.sign(p.yaw_deg) === -Math.sign(p.nose_offset));
  const yawPositive = yawNoseLeft * 2 >= yawRows.length ? 'left' : 'right';
  // pitch: Human's pitch vs which end of the forehead (10) -> chin (152) line is nearer the camera
  const pitchRows = rows.filter(([, p]) => Math.abs(p.pitch_deg) > 3);
  const pitchChinFar = count(pitchRows, ([, p]) => Math.sign(p.pitch_deg) === Math.sign(p.pose_points[152][2] - p.pose_points[10][2]));
  const pitchPositive = pitchChinFar * 2 >= pitchRows.length ? 'down' : 'up';
  // roll: Human's roll vs the corpus' constructed in-plane rotation (labels.json truth.roll_deg =
  // atan2(dy, dx) of the image-left -> image-right eye line, y down: > 0 = clockwise on screen)
  const rollRows = labels.filter((l) => l.truth && Math.abs(l.truth.roll_deg) >= 5 && photos[l.file] && photos[l.file].faces)
    .map((l) => [l.truth.roll_deg, photos[l.file].roll_deg, photos[l.file].eye_line_deg]);
  const rollSame = count(rollRows, ([t, r]) => Math.sign(t) === Math.sign(r));
  const eyeSame = count(rollRows, ([t, , e]) => Math.sign(t) === Math.sign(e));
  const rollSlope = rollRows.length ? rollRows.reduce((s, [t, r]) => s + t * r, 0) / rollRows.reduce((s, [t]) => s + t * t, 0) : null;
  const rollErr = rollRows.length ? mean(rollRows.map(([t, r]) => Math.abs(r - t))) : null;
  // pitch of the frontal, level constructions (classes compliant / compliant_geometry / roll_5):
  // median per source photo, to show where "level" sits on Human's pitch scale
  const bySource = {};
  for (const l of labels) {
    if (!['compliant', 'compliant_geometry', 'roll_5'].includes(l.class) || !photos[l.file] || !photos[l.file].faces) continue;
    (bySource[l.source] = bySource[l.source] || []).push(photos[l.file].pitch_deg);
  }
  const median = (a) => { const b = [...a].sort((x, y) => x - y); return b.length % 2 ? b[(b.length - 1) / 2] : (b[b.length / 2 - 1] + b[b.length / 2]) / 2; };
  const levelPitch = Object.fromEntries(Object.entries(bySource).sort().map(([k, v]) => [k, r4(median(v))]));
  const lp = Object.values(levelPitch);
  const levelText = lp.length ? `frontal passport-style corpus photos read ${Math.min(...lp).toFixed(1)} .. ${Math.max(...lp).toFixed(1)} deg (median per source photo, see level_pitch_by_source)` : 'see the photos';
  const rollPositive = rollSame * 2 >= rollRows.length ? 'clockwise' : 'counter-clockwise';

  const flip = (key) => {
    const d = mirrorPairs.map((m) => m[key]);
    return {
      pairs: d.length,
      opposite_sign: count(d, ([a, b]) => Math.sign(a) === -Math.sign(b)),
      mean_original_plus_mirrored: rn(mean(d.map(([a, b]) => a + b))),
      mean_abs_original_plus_mirrored: rn(mean(d.map(([a, b]) => Math.abs(a + b)))),
      mean_abs_original_minus_mirrored: rn(mean(d.map(([a, b]) => Math.abs(a - b)))),
    };
  };
  return {
    frame: 'photo = decoded, EXIF-oriented image, x right, y down; angles in degrees (Human returns radians); values are those of the LARGEST face (box area)',
    yaw: `positive yaw = nose towards the image ${yawPositive} (for an unmirrored photo: the subject turns to their own ${yawPositive === 'left' ? 'right' : 'left'}); 0 = frontal`,
    pitch: `positive pitch = chin ${pitchPositive} (face tilted ${pitchPositive === 'down' ? 'down, looking below the camera' : 'up, looking above the camera'}); 0 = forehead point 10 and chin point 152 at equal depth, which is NOT exactly a level head: ${levelText}`,
    roll: rollRows.length
      ? `positive roll = ${rollPositive} in the image (y down; ${rollPositive === 'clockwise' ? 'image-right eye lower), the same sign as' : 'image-left eye lower), the opposite sign of'} the corpus labels' roll_deg`
      : 'not measured (no --labels): analytically roll = -atan2(r10, ...) with r10 = yAxis.x',
    evidence: {
      depth: `mesh z: the nose tip (1) is nearer (smaller z) than both contour points 234 / 454 in ${noseNearer} of ${rows.length} photos: smaller z = nearer the camera`,
      yaw: `of ${yawRows.length} photos with |yaw| > 3 deg, ${yawNoseLeft} have the nose tip left of the 234 / 454 midpoint when yaw > 0 (right when yaw < 0) (nose_offset has the opposite sign of yaw). Also checked by eye once, when this script was written (Human 3.3.6, wasm), on non-corpus photos (fixtures/photos camera.png: face in profile towards the image right, yaw -44; sample2.jpg profile towards the image left, yaw +37). Analytically yaw = atan2(zAxis.x, xAxis.x), zAxis pointing away from the camera`,
      pitch: `of ${pitchRows.length} photos with |pitch| > 3 deg, ${pitchChinFar} have the chin (152) farther from the camera than the forehead top (10) when pitch > 0 (nearer when pitch < 0). Analytically pitch = atan2(yAxis.z, yAxis.y), yAxis = forehead -> chin. Checked by eye once in the same way (fixtures/photos sample2.jpg girl looking down at her phone: pitch +16; obama3.jpg chin slightly raised: pitch -11)`,
      roll: rollRows.length
        ? `over ${rollRows.length} corpus images with |constructed roll| >= 5 deg: sign(roll_deg) == sign(labels truth.roll_deg) in ${rollSame}; least-squares slope roll_deg / label = ${rn(rollSlope)}, mean |roll_deg - label| = ${rn(rollErr)} deg; eye_line_deg (mesh 33 -> 263) has the label's sign in ${eyeSame}. e.g. bob_testimage_roll_20_01.jpg: label +20, roll_deg ${photos['bob_testimage_roll_20_01.jpg']?.roll_deg}`
        : 'no labels.json found',
      mirror: {
        note: 'photos in "mirrored" were also run flipped left-right (tf.reverse on the width axis). A mirror-consistent estimator flips the signs of yaw and roll and keeps pitch; mean_original_plus_mirrored (yaw, roll) is twice the estimator\'s left-right bias',
        yaw: flip('yaw'),
        pitch: flip('pitch'),
        roll: flip('roll'),
      },
    },
    level_pitch_by_source: levelPitch,
    box: 'face.box [x, y, w, h] in photo px (mesh-derived box clamped to the image)',
    score: 'face.score = FaceMesh confidence (mesh_score); box_score = BlazeFace confidence',
    gaze: 'face.rotation.gaze from the iris: bearing (deg, Human\'s convention) and strength',
    nose_offset: '(x of nose tip 1 - midpoint x of contour points 234 / 454) / |454 - 234|: > 0 = nose right of the face centre in the image',
    eye_line_deg: 'atan2(dy, dx) (deg, y down) of the line mesh 33 -> 263 (outer eye corners, image-left to image-right for an upright face): the corpus labels\' roll_deg definition',
    pose_points: 'mesh points 1 (nose tip), 10 (forehead top), 152 (chin), 234 / 454 (face contour, image-left / image-right for an upright frontal face): [x px, y px, z], z = mesh depth, smaller = nearer',
    matrix: 'face.rotation.matrix, row-major, rows xAxis (234 -> 454), yAxis (10 -> 152), zAxis = xAxis x yAxis (away from the camera)',
  };
}

async function main() {
  const t0 = Date.now();
  let backend = args.backend;
  let human = new H.Human(config(backend));
  registerFileRouter(human.tf);
  let backendNote = null;
  try {
    await human.init();
    if (human.tf.getBackend() !== backend) throw new Error(`got backend ${human.tf.getBackend()}`);
    await human.load();
  } catch (e) {
    if (backend === 'cpu') throw e;
    backendNote = `${backend} failed (${e.message || e}); fell back to cpu`;
    console.error(`pose-reference: ${backendNote}`);
    backend = 'cpu';
    human = new H.Human(config(backend));
    await human.init();
    await human.load();
  }
  const { tf } = human;
  if (tf.getBackend() !== backend) throw new Error(`backend ${backend} not available (got ${tf.getBackend()})`);
  const loaded = human.models.loaded();
  for (const m of ['blazeface', 'facemesh', 'iris']) {
    if (!loaded.some((n) => n.toLowerCase().includes(m))) throw new Error(`model ${m} not loaded (loaded: ${loaded.join(', ')})`);
  }

  const index = JSON.parse(fs.readFileSync(path.join(args.decoded, 'index.json'), 'utf8'));
  const order = [...index.photos].sort((a, b) => (a.name < b.name ? -1 : 1));
  const mirrorSet = args.mirror === 'all' ? new Set(order.map((m) => m.name)) : new Set(args.mirror.split(',').filter(Boolean));
  for (const n of mirrorSet) if (!order.some((m) => m.name === n)) throw new Error(`--mirror: no photo ${n}`);

  const photos = {};
  const mirrored = {};
  const mirrorPairs = [];
  const f1 = (v) => v.toFixed(1).padStart(6);
  for (const meta of order) {
    const p = await run(human, tf, meta, false);
    photos[meta.name] = p;
    let line = `  ${meta.name.padEnd(38)} faces ${p.faces}`;
    if (p.faces) line += `  yaw ${f1(p.yaw_deg)}  pitch ${f1(p.pitch_deg)}  roll ${f1(p.roll_deg)}`;
    if (mirrorSet.has(meta.name)) {
      const q = await run(human, tf, meta, true);
      mirrored[meta.name] = q.faces
        ? { faces: q.faces, yaw_deg: q.yaw_deg, pitch_deg: q.pitch_deg, roll_deg: q.roll_deg, box: q.box, score: q.score, nose_offset: q.nose_offset, eye_line_deg: q.eye_line_deg }
        : { faces: 0 };
      if (p.faces && q.faces) {
        mirrorPairs.push({ yaw: [p.yaw_deg, q.yaw_deg], pitch: [p.pitch_deg, q.pitch_deg], roll: [p.roll_deg, q.roll_deg] });
        line += `  | mirrored ${f1(q.yaw_deg)} ${f1(q.pitch_deg)} ${f1(q.roll_deg)}`;
      }
    }
    console.log(line);
  }
  const found = Object.values(photos).filter((p) => p.faces).length;
  if (found === 0) throw new Error('no face found in any photo (models not loaded?)');

  let labels = [];
  if (args.labels) labels = JSON.parse(fs.readFileSync(args.labels, 'utf8'));

  const out = {
    tool: `@vladmandic/human ${HUMAN_VERSION}`,
    generator: 'scripts/pose-reference.sh (scripts/pose-reference.js)',
    versions: { human: HUMAN_VERSION, tfjs: tf.version_core, node: process.version, pillow: index.pillow_version },
    backend: tf.getBackend(),
    ...(backendNote ? { backend_note: backendNote } : {}),
    decoding: index.decoding,
    config: {
      detector: 'blazeface, rotation correction on (a crop whose detector roll exceeds 0.2 rad is rotated upright before the mesh), maxDetected 10, minConfidence 0.2, iouThreshold 0.1',
      mesh: 'facemesh (468 points) + iris (478 points); attention, emotion, description, antispoof, liveness, body, hand, object, gesture, segmentation off; image filter off; cacheSensitivity 0 (no frame caching)',
      input: 'int32 tensor [1, H, W, 3] of the decoded RGB8 pixels (Human casts it to float32)',
    },
    method: 'Human src/face/angles.ts calculateFaceAngle: xAxis = mesh 234 -> 454, yAxis = 10 -> 152 (x, y scaled by image size / (max box side / 1.5), z raw), zAxis = x cross y, x re-orthogonalised; YZX Euler angles of the matrix (rows x, y, z): pitch = atan2(r12, r11), yaw = atan2(r20, r00), roll = -atan2(r10, sqrt(r00^2 + r20^2))',
    photos_with_face: found,
    conventions: conventions(photos, mirrorPairs, labels),
    photos,
    mirrored,
  };
  fs.mkdirSync(path.dirname(path.resolve(args.out)), { recursive: true });
  fs.writeFileSync(args.out, `${JSON.stringify(out, null, 1)}\n`);
  console.log(`  backend ${tf.getBackend()}, ${order.length} photos (${found} with a face, ${Object.keys(mirrored).length} also mirrored), node part ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  console.log(`  conventions: ${out.conventions.yaw}; ${out.conventions.pitch.split(';')[0]}; ${out.conventions.roll}`);
}

main().catch((e) => { console.error(e); process.exit(1); });
