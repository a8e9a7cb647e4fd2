#!/usr/bin/env node
// Draws the app icon (512x512 RGBA PNG) with nothing but node:zlib: a rounded square,
// three stacked disks, and a change-map grid of blocks, some of them marked changed.
// Usage: node packaging/build/make-icon.mjs [out.png]   (default: packaging/build/icon.png)
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { deflateSync } from 'node:zlib';

const SIZE = 512;
const out = process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), 'icon.png');
const px = new Uint8Array(SIZE * SIZE * 4);

function blend(x, y, [r, g, b], a = 1) {
  if (x < 0 || y < 0 || x >= SIZE || y >= SIZE || a <= 0) return;
  const i = (y * SIZE + x) * 4;
  const inv = 1 - a;
  px[i] = Math.round(r * a + px[i] * inv);
  px[i + 1] = Math.round(g * a + px[i + 1] * inv);
  px[i + 2] = Math.round(b * a + px[i + 2] * inv);
  px[i + 3] = Math.round(255 * a + px[i + 3] * inv);
}

/** Coverage of a rounded rectangle at a pixel (1-pixel anti-aliased edge). */
function roundRect(x0, y0, x1, y1, radius, color, alpha = 1) {
  for (let y = Math.floor(y0); y < Math.ceil(y1); y++) {
    for (let x = Math.floor(x0); x < Math.ceil(x1); x++) {
      const cx = Math.min(Math.max(x + 0.5, x0 + radius), x1 - radius);
      const cy = Math.min(Math.max(y + 0.5, y0 + radius), y1 - radius);
      const d = Math.hypot(x + 0.5 - cx, y + 0.5 - cy);
      const cover = Math.min(1, Math.max(0, radius - d + 0.5));
      blend(x, y, color, cover * alpha);
    }
  }
}

// background: a vertical blue gradient in a rounded square
for (let y = 16; y < SIZE - 16; y++) {
  const t = (y - 16) / (SIZE - 32);
  const color = [Math.round(24 + 10 * t), Math.round(64 - 24 * t), Math.round(132 - 40 * t)];
  for (let x = 16; x < SIZE - 16; x++) blend(x, y, color);
}
// clip the gradient to rounded corners by re-drawing the corners transparent
const mask = new Float32Array(SIZE * SIZE);
for (let y = 0; y < SIZE; y++) {
  for (let x = 0; x < SIZE; x++) {
    const r = 96;
    const cx = Math.min(Math.max(x + 0.5, 16 + r), SIZE - 16 - r);
    const cy = Math.min(Math.max(y + 0.5, 16 + r), SIZE - 16 - r);
    mask[y * SIZE + x] = Math.min(1, Math.max(0, r - Math.hypot(x + 0.5 - cx, y + 0.5 - cy) + 0.5));
  }
}
for (let i = 0; i < SIZE * SIZE; i++) px[i * 4 + 3] = Math.round(px[i * 4 + 3] * mask[i]);

// three stacked disks (left)
for (let k = 0; k < 3; k++) {
  const y = 120 + k * 96;
  roundRect(72, y, 264, y + 72, 18, [226, 234, 244]);
  roundRect(92, y + 28, 180, y + 44, 8, [120, 140, 168]);
  roundRect(220, y + 26, 240, y + 46, 10, k === 0 ? [255, 170, 51] : [92, 200, 120]);
}
// the change map (right): 4 x 6 blocks, the changed ones orange
const changed = new Set([1, 2, 6, 9, 10, 13, 18, 22]);
for (let row = 0; row < 6; row++) {
  for (let col = 0; col < 4; col++) {
    const x = 300 + col * 38;
    const y = 120 + row * 46;
    roundRect(x, y, x + 30, y + 36, 6, changed.has(row * 4 + col) ? [255, 170, 51] : [78, 110, 160]);
  }
}

// PNG: signature, IHDR, IDAT (filter 0 per row), IEND
const CRC_TABLE = new Uint32Array(256).map((_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
function chunk(type, data) {
  const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([len, body, crc]);
}
const ihdr = Buffer.alloc(13);
ihdr.writeUInt32BE(SIZE, 0);
ihdr.writeUInt32BE(SIZE, 4);
ihdr[8] = 8; // bit depth
ihdr[9] = 6; // RGBA
const raw = Buffer.alloc(SIZE * (SIZE * 4 + 1));
for (let y = 0; y < SIZE; y++) {
  raw[y * (SIZE * 4 + 1)] = 0;
  Buffer.from(px.buffer, y * SIZE * 4, SIZE * 4).copy(raw, y * (SIZE * 4 + 1) + 1);
}
const png = Buffer.concat([
  Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
  chunk('IHDR', ihdr),
  chunk('IDAT', deflateSync(raw, { level: 9 })),
  chunk('IEND', Buffer.alloc(0)),
]);
writeFileSync(out, png);
console.log(`wrote ${out} (${png.length} bytes)`);
