#!/usr/bin/env node
/*
 * face-api reference outputs ("goldens") for veridoc's Rust ports of face-api's models.
 * Run through scripts/faceapi-reference.sh, which installs the npm packages, decodes the photos
 * and passes the paths below; running this file by hand:
 *
 *   node scripts/faceapi-reference.js --modules fixtures/node --models fixtures/models \
 *        --decoded DIR --out fixtures/reference [--backend wasm|cpu]
 *
 * DIR holds index.json ([{name, width, height, ...}]) and one <name>.rgb per photo (packed RGB8,
 * row-major, EXIF orientation already applied). Writes OUT/faceapi.json and OUT/nets.json plus
 * OUT/nets_input_*.bin. Versions: @vladmandic/face-api 1.7.15, @tensorflow/tfjs(-backend-wasm)
 * 4.22.0. Everything below was read from the installed package (src/*.ts, which matches
 * dist/face-api.node-wasm.js) and from tfjs-core / tfjs-backend-cpu 4.22.0.
 *
 * ===================================================================================
 * 1. LANDMARK PREPROCESSING  (detectAllFaces(img, TinyFaceDetectorOptions).withFaceLandmarks():
 *    DetectAllFaceLandmarksTask.run -> extractFaceTensors -> FaceLandmark68Net.detectLandmarks)
 * ===================================================================================
 * Input image: int32 tensor [H, W, 3], R,G,B, no colour conversion. W, H = photo size.
 *  a. Detection box D (float, photo px) = FaceDetection.box = relativeBox * (W, H).
 *     extractFaceTensors uses det.forSize(W, H).box (the same numbers up to a float round trip).
 *  b. Crop box C = D.clipAtImageBorders(W, H)  (Box.clipAtImageBorders):
 *        x0 = max(D.x, 0); y0 = max(D.y, 0)
 *        w  = min(D.right - x0, W - x0); h = min(D.bottom - y0, H - y0)
 *        then Box.floor(): x0, y0, w, h are EACH floored independently (so the right edge is
 *        floor(x0) + floor(w), not floor(D.right)). No margin / padding around the box.
 *     Boxes with w <= 0 or h <= 0 are dropped (this would shift the indices of later faces).
 *  c. face = tf.slice3d(img, [C.y, C.x, 0], [C.h, C.w, 3])   (int32 pixels)
 *  d. toNetInput(face) -> NetInput.toBatchTensor(112, isCenterInputs = true):
 *       - padToSquare(x, isCenterImage = true): if h == w nothing happens. Otherwise
 *         diff = |h - w| along the SHORTER dimension; append = Math.round(diff * 0.5) zero rows /
 *         columns AFTER (bottom / right), prepend = diff - append BEFORE (top / left)
 *         (JS rounds .5 up: diff = 5 -> 2 before, 3 after). Pad value 0 = black, in the pixel
 *         domain (becomes -mean/255 after normalization), float32.
 *       - if the padded side S != 112: tf.image.resizeBilinear(x, [112, 112],
 *         alignCorners = false, halfPixelCenters = false)  (legacy TF sampling): for output
 *         index i (row or column), src = i * (S / 112); i0 = floor(src), i1 = min(ceil(src), S-1),
 *         f = src - i0. value = top + (bottom - top) * fy with top = tl + (tr - tl) * fx,
 *         bottom = bl + (br - bl) * fx (tfjs-backend-cpu resizeBilinear; the wasm backend does
 *         the same in C++). No half-pixel offset: output pixel 0 samples source pixel 0 exactly.
 *         S == 112: no resize at all.
 *       - cast to float32 -> batch [1, 112, 112, 3] in the pixel domain (0..255, fractional).
 *  e. FaceFeatureExtractor.forwardInput: x = normalize(x, meanRgb).div(255), meanRgb =
 *     [122.782, 117.001, 104.298] (tf.sub of float32 constants, then a float32 DIVISION by 255).
 *  f. Net (section 3) -> 136 raw values o = fc output, no activation, interleaved
 *     [x0, y0, x1, y1, ..., x67, y67], relative to the 112x112 PADDED square (about [0, 1]).
 *  g. FaceLandmark68NetBase.postProcess(o, inputSize = 112, [{width: w, height: h}]):
 *        s = 112 / max(w, h); ws = w * s; hs = h * s   (not rounded)
 *        padX = ws < hs ? (hs - ws) / 2 : 0;  padY = hs < ws ? (ws - hs) / 2 : 0
 *        relX = (oX * 112 - padX) / ws;  relY = (oY * 112 - padY) / hs   (float32 tensors)
 *     -> landmarks relative to the crop C, in [0, 1]. NOTE: this assumes symmetric padding of
 *     diff / 2, while padToSquare prepended diff - round(diff / 2) (= floor(diff / 2)) pixels:
 *     for odd diff there is a systematic offset of half a crop pixel (face-api quirk).
 *  h. detectLandmarks: FaceLandmarks68(rel, {width: w, height: h}) -> crop px = rel * (w, h).
 *  i. extendWithFaceLandmarks: photo px = rel * (w, h) + (D.x, D.y). The shift is the
 *     UNCLIPPED, UNFLOORED detection box origin, not the crop origin (C.x, C.y): it differs by the
 *     fractional part of D.x / D.y and, when D.x < 0 or D.y < 0, by that whole negative amount
 *     (face-api quirk; replicate it to match these goldens).
 *
 * ===================================================================================
 * 2. EXPRESSION PREPROCESSING (... .withFaceLandmarks().withFaceExpressions():
 *    PredictAllFaceExpressionsWithFaceAlignmentTask -> extractAllFacesAndComputeResults with
 *    getRectForAlignment = ({ alignedRect }) => alignedRect -> FaceExpressionNet.predictExpressions)
 * ===================================================================================
 *  a. The crop comes from the LANDMARKS, not from the detector box. extendWithFaceLandmarks
 *     computes alignedRect = landmarks.align() with defaults {useDlibAlignment: false,
 *     minBoxPadding: 0.2} -> FaceLandmarks.alignMinBbox(0.2):
 *        B = minBbox(68 photo-px landmarks) (min x / y from +Inf, max x / y reduced from 0)
 *        B.pad(0.2 * B.w, 0.2 * B.h): x = B.x - 0.1 B.w, y = B.y - 0.1 B.h, w = 1.2 B.w,
 *        h = 1.2 B.h; wrapped as FaceDetection(score, rect / (W, H), (W, H)) -> box = rect
 *        (float round trip).
 *  b. Crop E = alignedRect.box.clipAtImageBorders(W, H) (same clip + independent floor as 1b),
 *     tf.slice3d as in 1c.
 *  c. Same NetInput.toBatchTensor(112, true) (centred zero pad to square + resizeBilinear
 *     (alignCorners false, halfPixelCenters false)) and the same normalization (mean
 *     [122.782, 117.001, 104.298], / 255) as 1d-1e (FaceExpressionNet has its own
 *     FaceFeatureExtractor weights).
 *  d. FaceExpressionNet.forwardInput = tf.softmax(runNet(x)) -> 7 probabilities in
 *     FACE_EXPRESSION_LABELS order: neutral, happy, sad, angry, fearful, disgusted, surprised.
 *  (withFaceExpressions() WITHOUT withFaceLandmarks() would crop the detector box D instead;
 *   the goldens use the landmark-aligned crop.)
 *
 * ===================================================================================
 * 3. ARCHITECTURE (FaceFeatureExtractor.forwardInput + FaceProcessor.runNet)
 * ===================================================================================
 * faceLandmark68Net and faceExpressionNet are the same network except for the fc layer, each with
 * its own weights. Input [N, 112, 112, 3] normalized as in 1e. Layout NHWC.
 *   dense0 = denseBlock4(x, isFirstLayer = true)  3 -> 32,  stride 2 -> [N, 56, 56, 32]
 *   dense1 = denseBlock4                         32 -> 64,  stride 2 -> [N, 28, 28, 64]
 *   dense2 = denseBlock4                         64 -> 128, stride 2 -> [N, 14, 14, 128]
 *   dense3 = denseBlock4                        128 -> 256, stride 2 -> [N, 7, 7, 256]
 *   tf.avgPool(out, [7, 7], [2, 2], 'valid')     -> [N, 1, 1, 256] (mean of the 49 positions)
 *   reshape [N, 256]; fc = fullyConnectedLayer: x . W + b, W = fc/weights [256, C_out] (in, out),
 *   b = fc/bias [C_out]; C_out = 136 (landmarks, no activation) or 7 (expression logits;
 *   predictExpressions applies tf.softmax).
 * denseBlock4(x) (faceFeatureExtractor/denseBlock.ts):
 *   out1 = relu(conv0(x))             conv0: dense0 -> tf.conv2d 3x3, stride 2, 'same', + bias
 *                                            (filters [3, 3, 3, 32] HWIO);
 *                                     dense1..3 -> separable conv, stride 2
 *   out2 = conv1(out1)                (NO relu on out2 itself)
 *   out3 = conv2(relu(out1 + out2))
 *   out4 = conv3(relu(out1 + (out2 + out3)))
 *   y    = relu(out1 + (out2 + (out3 + out4)))
 *   conv1..conv3: separable conv, stride 1.
 * Separable conv (common/depthwiseSeparableConv.ts): tf.separableConv2d(x, depthwise_filter
 *   [3, 3, Cin, 1], pointwise_filter [1, 1, Cin, Cout], stride, 'same') + bias [Cout]: depthwise
 *   3x3 (with the stride) then pointwise 1x1, ONE bias after the pointwise, no batch norm, no
 *   activation inside. All convs are 'same' padded with zeros (in the normalized domain), TF
 *   convention (tfjs-core conv_util): pad_total = max((ceil(in / s) - 1) * s + k - in, 0),
 *   before = floor(pad_total / 2), after = the rest -> stride 2 on even sizes (112, 56, 28, 14):
 *   0 before, 1 after (bottom / right); stride 1: 1 / 1.
 * faceLandmark68TinyNet (TinyFaceFeatureExtractor, not used for the goldens): 3 x denseBlock3
 *   (out1, out2, out3 as above, y = relu(out1 + (out2 + out3))) 3 -> 32 -> 64 -> 128, each
 *   stride 2 -> [N, 14, 14, 128]; avgPool [14, 14] stride 2 'valid' -> 128; fc [128, 136];
 *   same mean / 255 normalization.
 * Weight files: <model>.bin = the manifest's tensors concatenated in manifest order. uint8-
 *   quantized tensors take 1 byte per value, dequantized by tfjs io decodeWeights as
 *   float32(q * scale + min) (q * scale + min computed in double); tensors without
 *   "quantization" are raw float32 little-endian (the expression model's biases).
 *
 * face_landmark_68_model-weights_manifest.json (all float32, uint8-quantized):
 *   dense0/conv0/filters [3,3,3,32]            dense0/conv0/bias [32]
 *   dense0/conv{1,2,3}/depthwise_filter [3,3,32,1]   .../pointwise_filter [1,1,32,32]   .../bias [32]
 *   dense1/conv0/depthwise_filter [3,3,32,1]   dense1/conv0/pointwise_filter [1,1,32,64]   dense1/conv0/bias [64]
 *   dense1/conv{1,2,3}/depthwise_filter [3,3,64,1]   .../pointwise_filter [1,1,64,64]   .../bias [64]
 *   dense2/conv0/depthwise_filter [3,3,64,1]   dense2/conv0/pointwise_filter [1,1,64,128]  dense2/conv0/bias [128]
 *   dense2/conv{1,2,3}/depthwise_filter [3,3,128,1]  .../pointwise_filter [1,1,128,128] .../bias [128]
 *   dense3/conv0/depthwise_filter [3,3,128,1]  dense3/conv0/pointwise_filter [1,1,128,256] dense3/conv0/bias [256]
 *   dense3/conv{1,2,3}/depthwise_filter [3,3,256,1]  .../pointwise_filter [1,1,256,256] .../bias [256]
 *   fc/weights [256,136]                       fc/bias [136]
 *   (order in the file: dense0/conv0/filters, dense0/conv0/bias, then per conv: depthwise_filter,
 *    pointwise_filter, bias; dense0..dense3; fc/weights, fc/bias. 356,840 bytes.)
 * face_expression_model-weights_manifest.json: the same names, shapes and order, except
 *   fc/weights [256,7] and fc/bias [7]; every bias tensor (the convs and fc/bias) is NOT quantized
 *   (raw float32), filters and fc/weights are uint8-quantized. 329,468 bytes.
 * face_landmark_68_tiny_model: dense0 (conv0 filters [3,3,3,32] + conv1, conv2 separable 32),
 *   dense1 (32 -> 64), dense2 (64 -> 128), no conv3; fc/weights [128,136], fc/bias [136];
 *   all uint8-quantized. 77,224 bytes.
 *
 * ===================================================================================
 * 4. TinyFaceDetector (for the boxes; TinyYolov2Base.forwardInput / detect / extractBoxes)
 * ===================================================================================
 *   toBatchTensor(inputSize, isCenterInputs = false): zero padding only AFTER (bottom / right),
 *   resizeBilinear(alignCorners false, halfPixelCenters false); normalize with meanRgb
 *   [117.001, 114.697, 97.404], / 255. Boxes decoded per cell / anchor with sigmoid / exp,
 *   score = sigmoid(objectness) > scoreThreshold, NMS IoU 0.4; returned in NMS order
 *   (descending score). The goldens keep that order.
 */
'use strict';

const fs = require('fs');
const path = require('path');
const { createRequire } = require('module');

// ---------------------------------------------------------------- arguments
const args = { backend: 'wasm' };
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i].replace(/^--/, '');
  if (!['modules', 'models', 'decoded', 'out', 'backend'].includes(k) || i + 1 >= process.argv.length) {
    console.error(`usage: faceapi-reference.js --modules DIR --models DIR --decoded DIR --out DIR [--backend wasm|cpu] (bad: ${process.argv[i]})`);
    process.exit(2);
  }
  args[k] = process.argv[i + 1];
}
for (const k of ['modules', 'models', 'decoded', 'out']) {
  if (!args[k]) { console.error(`faceapi-reference.js: --${k} is required`); process.exit(2); }
}

// Resolve the packages from the npm prefix the shell script installed them into.
const req = createRequire(path.resolve(args.modules, 'package.json'));
if (args.backend === 'wasm') req('@tensorflow/tfjs-backend-wasm');
const faceapi = req('@vladmandic/face-api/dist/face-api.node-wasm.js');
const { tf } = faceapi;

const LABELS = ['neutral', 'happy', 'sad', 'angry', 'fearful', 'disgusted', 'surprised'];
const MEAN_RGB = [122.782, 117.001, 104.298];
const INPUT_SIZES = [416, 608, 320]; // 416: full pipeline; 608 / 320: boxes + scores only
const SCORE_THRESHOLD = 0.5;
const TOL = 1e-3; // our re-computation of the intermediates must match the pipeline's results

const box4 = (b) => ({ x: b.x, y: b.y, width: b.width, height: b.height });
const pairs = (flat) => Array.from({ length: flat.length / 2 }, (_, i) => [flat[2 * i], flat[2 * i + 1]]);
const maxAbsDiff = (a, b) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);
let worst = 0; // largest pipeline-vs-recomputation difference seen
function check(what, a, b) {
  const d = maxAbsDiff(a, b);
  worst = Math.max(worst, d);
  if (!(d <= TOL)) throw new Error(`${what}: recomputation differs from face-api's pipeline by ${d}`);
}

// Runs one FaceProcessor net (landmark or expression) on a face crop (int32 [h, w, 3]) exactly
// like detectLandmarks / predictExpressions do, returning the intermediates.
async function runOnCrop(net, face) {
  const netInput = await faceapi.toNetInput(face);
  const raw = net.runNet(netInput); // toBatchTensor(112, true) + normalize + net
  const out = { raw: Array.from(await raw.data()) };
  if (net === faceapi.nets.faceLandmark68Net) {
    const [h, w] = face.shape;
    const post = net.postProcess(raw, 112, [{ width: w, height: h }]);
    out.relative = Array.from(await post.data());
    post.dispose();
  } else {
    const sm = tf.softmax(raw);
    out.softmax = Array.from(await sm.data());
    sm.dispose();
  }
  raw.dispose();
  return out;
}

async function detect(img, inputSize) {
  const opts = new faceapi.TinyFaceDetectorOptions({ inputSize, scoreThreshold: SCORE_THRESHOLD });
  return faceapi.detectAllFaces(img, opts);
}

async function processPhoto(meta, keep) {
  const { width: W, height: H } = meta;
  const bytes = fs.readFileSync(path.join(args.decoded, meta.file));
  if (bytes.length !== W * H * 3) throw new Error(`${meta.name}: expected ${W * H * 3} bytes, got ${bytes.length}`);
  const img = tf.tensor3d(Int32Array.from(bytes), [H, W, 3], 'int32');

  // face-api's default input size first; a photo it finds no face in at 416 (a close-up
  // portrait whose face falls between the largest anchors) is tried at 608, then 320, so
  // its landmarks and expression are still known (recorded as `input_size`)
  let inputSize = 416;
  let results = [];
  for (const size of [416, 608, 320]) {
    const opts = new faceapi.TinyFaceDetectorOptions({ inputSize: size, scoreThreshold: SCORE_THRESHOLD });
    results = await faceapi.detectAllFaces(img, opts).withFaceLandmarks().withFaceExpressions();
    inputSize = size;
    if (results.length > 0) break;
  }
  const plain416 = await detect(img, inputSize);
  if (plain416.length !== results.length) {
    throw new Error(`${meta.name}: ${plain416.length} detections but ${results.length} full results (a crop was empty)`);
  }

  const faces = [];
  for (let i = 0; i < results.length; i += 1) {
    const r = results[i];
    const det = r.detection;
    // --- landmarks: crop = detection box, clipped + floored (extractFaceTensors)
    const lmCrop = det.forSize(W, H).box.clipAtImageBorders(W, H);
    const [lmFace] = await faceapi.extractFaceTensors(img, [det]);
    const lm = await runOnCrop(faceapi.nets.faceLandmark68Net, lmFace);
    const photoPts = r.landmarks.positions.flatMap((p) => [p.x, p.y]);
    check(`${meta.name}#${i} landmarks relative`, lm.relative, r.unshiftedLandmarks.relativePositions.flatMap((p) => [p.x, p.y]));
    check(`${meta.name}#${i} landmarks photo`, photoPts,
      lm.relative.map((v, k) => (k % 2 === 0 ? v * lmCrop.width + det.box.x : v * lmCrop.height + det.box.y)));
    // --- expressions: crop = landmark-aligned rect, clipped + floored
    const aligned = r.alignedRect;
    const exCrop = aligned.forSize(W, H).box.clipAtImageBorders(W, H);
    const [exFace] = await faceapi.extractFaceTensors(img, [aligned]);
    const ex = await runOnCrop(faceapi.nets.faceExpressionNet, exFace);
    const probs = LABELS.map((l) => r.expressions[l]);
    check(`${meta.name}#${i} expressions`, ex.softmax, probs);
    check(`${meta.name}#${i} box`, [det.box.x, det.box.y, det.box.width, det.box.height, det.score],
      [plain416[i].box.x, plain416[i].box.y, plain416[i].box.width, plain416[i].box.height, plain416[i].score]);

    if (keep && i === 0) {
      // keep the exact 112x112 batch tensors of the first face for nets.json
      for (const [tag, face, crop] of [['landmark', lmFace, lmCrop], ['expression', exFace, exCrop]]) {
        const t = (await faceapi.toNetInput(face)).toBatchTensor(112, true);
        keep[tag] = { data: Float32Array.from(await t.data()), crop: box4(crop) };
        t.dispose();
      }
    }
    lmFace.dispose();
    exFace.dispose();

    faces.push({
      box: box4(det.box),
      score: det.score,
      landmark_crop: box4(lmCrop),
      landmark_shift: { x: det.box.x, y: det.box.y },
      landmarks_net_raw: lm.raw,
      landmarks_crop_relative: pairs(lm.relative),
      landmarks: pairs(photoPts),
      aligned_box: box4(aligned.box),
      expression_crop: box4(exCrop),
      expression_logits: ex.raw,
      expressions: probs,
      expression: LABELS[probs.indexOf(Math.max(...probs))],
    });
  }

  const entry = { width: W, height: H, source: meta.source, input_size: inputSize, faces };
  for (const size of INPUT_SIZES.slice(1)) {
    entry[`detections_${size}`] = (await detect(img, size)).map((d) => ({ box: box4(d.box), score: d.score }));
  }
  img.dispose();
  return entry;
}

// ---------------------------------------------------------------- network-level goldens
function synthetic(fn) {
  const a = new Float32Array(112 * 112 * 3);
  for (let y = 0; y < 112; y += 1) for (let x = 0; x < 112; x += 1) for (let c = 0; c < 3; c += 1) a[(y * 112 + x) * 3 + c] = fn(x, y, c);
  return a;
}

async function runNetsOn(data) {
  const t = tf.tensor4d(data, [1, 112, 112, 3], 'float32');
  // A [1, 112, 112, 3] NetInput is square and already 112: toBatchTensor is the identity, so
  // the nets see exactly `data` (then normalize + /255 inside FaceFeatureExtractor.forwardInput).
  const netInput = new faceapi.NetInput([t]);
  const out = {};
  for (const [key, net] of [['landmark68', faceapi.nets.faceLandmark68Net], ['expression', faceapi.nets.faceExpressionNet]]) {
    const feat = net.faceFeatureExtractor.forwardInput(netInput); // [1, 1, 1, 256] after avgPool
    const raw = net.runNet(netInput); // fc output
    out[key] = { features: Array.from(await feat.data()), raw: Array.from(await raw.data()) };
    if (key === 'expression') {
      const sm = net.forwardInput(netInput); // tf.softmax(runNet)
      out[key].softmax = Array.from(await sm.data());
      sm.dispose();
    }
    feat.dispose();
    raw.dispose();
  }
  t.dispose();
  return out;
}

function writeF32(file, data) {
  const buf = Buffer.alloc(data.length * 4);
  data.forEach((v, i) => buf.writeFloatLE(v, i * 4));
  fs.writeFileSync(file, buf);
}

async function main() {
  const t0 = Date.now();
  await tf.setBackend(args.backend);
  await tf.ready();
  if (tf.getBackend() !== args.backend) throw new Error(`backend ${args.backend} not available`);
  for (const net of ['tinyFaceDetector', 'faceLandmark68Net', 'faceExpressionNet']) {
    await faceapi.nets[net].loadFromDisk(args.models);
  }
  const index = JSON.parse(fs.readFileSync(path.join(args.decoded, 'index.json'), 'utf8'));
  fs.mkdirSync(args.out, { recursive: true });

  // ---- per-photo goldens
  const photos = {};
  const keep = {};
  let keepFrom = null;
  const order = [...index.photos].sort((a, b) => (a.name < b.name ? -1 : 1));
  for (const meta of order) {
    const want = !keepFrom && (meta.name === 'obama.jpg' || !order.some((m) => m.name === 'obama.jpg'));
    photos[meta.name] = await processPhoto(meta, want ? keep : null);
    if (want && keep.landmark) keepFrom = meta.name;
    const f = photos[meta.name].faces;
    console.log(`  ${meta.name.padEnd(24)} ${meta.width}x${meta.height}  faces ${f.length}`
      + `${f.length ? `  [${f.map((x) => `${x.expression} ${x.score.toFixed(3)}`).join(', ')}]` : ''}`
      + `  (608: ${photos[meta.name].detections_608.length}, 320: ${photos[meta.name].detections_320.length})`);
  }
  const versions = {
    'face-api': faceapi.version,
    tfjs: tf.version_core,
    node: process.version,
    pillow: index.pillow_version,
  };
  const faceJson = {
    generator: 'scripts/faceapi-reference.sh (scripts/faceapi-reference.js)',
    versions,
    backend: tf.getBackend(),
    detector: { model: 'tiny_face_detector_model', score_threshold: SCORE_THRESHOLD, input_size: 416, extra_input_sizes: INPUT_SIZES.slice(1) },
    expression_labels: LABELS,
    decoding: index.decoding,
    conventions: {
      coordinates: 'photo pixels of the decoded, EXIF-oriented image, x right, y down, origin at the top-left corner of the top-left pixel; boxes are {x, y, width, height} as face-api reports them',
      faces: 'TinyFaceDetector inputSize 416 results in face-api order (NMS order, descending score), each with the full pipeline detectAllFaces(...).withFaceLandmarks().withFaceExpressions() (faceLandmark68Net, full model)',
      landmark_crop: 'integer box sliced from the photo for the landmark net: detection box clipped at the image borders, x, y, width, height each floored (Box.clipAtImageBorders)',
      landmarks_net_raw: '136 fc outputs of faceLandmark68Net, interleaved x0, y0, ..., x67, y67, relative to the 112x112 padded square input',
      landmarks_crop_relative: '68 [x, y] after FaceLandmark68NetBase.postProcess: relative to landmark_crop ([0, 1])',
      landmarks: '68 [x, y] in photo pixels = landmarks_crop_relative * (landmark_crop.width, landmark_crop.height) + landmark_shift',
      landmark_shift: 'the unclipped, unfloored detection box origin (box.x, box.y) that face-api adds (not landmark_crop.x / y)',
      aligned_box: 'minBbox(landmarks) padded by 20% of its width / height (10% each side): face-api alignedRect',
      expression_crop: 'aligned_box clipped at the image borders and floored: the crop the expression net sees',
      expression_logits: '7 fc outputs of faceExpressionNet (before softmax), in expression_labels order',
      expressions: '7 probabilities (softmax of expression_logits) as face-api returns them, in expression_labels order',
      detections_608_320: 'TinyFaceDetector at inputSize 608 / 320, scoreThreshold 0.5: boxes + scores only',
    },
    consistency_max_abs_diff: 0,
    photos,
  };

  // ---- network-level goldens
  const inputs = [
    { name: 'hash', formula: 'v(x, y, c) = (x*7 + y*13 + c*29) % 256', data: synthetic((x, y, c) => (x * 7 + y * 13 + c * 29) % 256) },
    {
      name: 'gradient',
      formula: 'v(x, y, 0) = x*255/111, v(x, y, 1) = y*255/111, v(x, y, 2) = (x + y)*255/222 (computed in double, stored as float32)',
      data: synthetic((x, y, c) => [x * 255 / 111, y * 255 / 111, (x + y) * 255 / 222][c]),
    },
  ];
  if (keep.landmark) {
    for (const tag of ['landmark', 'expression']) {
      inputs.push({
        name: `face_${tag}_crop`,
        formula: `face-api's own ${tag}-net input for ${keepFrom} faces[0]: the photo region ${JSON.stringify(keep[tag].crop)} after NetInput.toBatchTensor(112, true) (centred zero pad to square + resizeBilinear alignCorners=false halfPixelCenters=false), before normalization`,
        source: { photo: keepFrom, face: 0, crop: keep[tag].crop },
        data: keep[tag].data,
      });
    }
  }
  const nets = [];
  for (const inp of inputs) {
    const file = `nets_input_${inp.name}.bin`;
    writeF32(path.join(args.out, file), inp.data);
    const out = await runNetsOn(inp.data);
    nets.push({
      name: inp.name,
      file,
      formula: inp.formula,
      ...(inp.source ? { source: inp.source } : {}),
      landmark68: { features: out.landmark68.features, raw: out.landmark68.raw },
      expression: { features: out.expression.features, logits: out.expression.raw, probabilities: out.expression.softmax },
    });
  }
  const netsJson = {
    generator: 'scripts/faceapi-reference.sh (scripts/faceapi-reference.js)',
    versions,
    backend: tf.getBackend(),
    input_format: 'each .bin: 112*112*3 float32 little-endian, NHWC [1, 112, 112, 3], index (y*112 + x)*3 + c, c = R, G, B; PIXEL domain (0..255), i.e. before normalization',
    normalization: 'applied inside the nets (FaceFeatureExtractor.forwardInput): x_norm = (x - mean[c]) / 255, mean = [122.782, 117.001, 104.298] (float32 subtract, then float32 divide)',
    outputs: {
      features: '256 values after dense3 + avgPool 7x7 (the fc input), [1, 1, 1, 256] flattened',
      'landmark68.raw': '136 fc outputs of faceLandmark68Net (x0, y0, ..., x67, y67 relative to the 112x112 input), before postProcess',
      'expression.logits': '7 fc outputs of faceExpressionNet before softmax; probabilities = tf.softmax(logits)',
    },
    expression_labels: LABELS,
    mean_rgb: MEAN_RGB,
    inputs: nets,
  };

  faceJson.consistency_max_abs_diff = worst;
  fs.writeFileSync(path.join(args.out, 'nets.json'), `${JSON.stringify(netsJson, null, 1)}\n`);
  fs.writeFileSync(path.join(args.out, 'faceapi.json'), `${JSON.stringify(faceJson, null, 1)}\n`);
  console.log(`  backend ${tf.getBackend()}, ${order.length} photos, ${nets.length} net inputs,`
    + ` pipeline-vs-recomputation max diff ${worst.toExponential(2)}, node part ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}

main().catch((e) => { console.error(e); process.exit(1); });
