/**
 * Colours of the heatmap: a 256-entry lookup table from change number to a pixel,
 * packed for a Uint32Array view of ImageData (RGBA bytes, little-endian: 0xAABBGGRR).
 */

export type Rgb = readonly [number, number, number];

export interface PaletteOptions {
  /** The current change number (the newest value in the map). */
  changesNumber: number;
  /** "Changed since N" mode: blocks <= N are drawn as unchanged. null: colour every change. */
  sinceN: number | null;
  dark: boolean;
}

export function packRgb([r, g, b]: Rgb): number {
  return ((255 << 24) | (b << 16) | (g << 8) | r) >>> 0;
}

/** Colour stops from old changes to the newest: blue, teal, yellow, orange, red. */
const STOPS: Rgb[] = [
  [49, 104, 196],
  [38, 166, 154],
  [240, 200, 40],
  [245, 130, 32],
  [214, 40, 40],
];

function lerp(a: Rgb, b: Rgb, t: number): Rgb {
  return [
    Math.round(a[0] + (b[0] - a[0]) * t),
    Math.round(a[1] + (b[1] - a[1]) * t),
    Math.round(a[2] + (b[2] - a[2]) * t),
  ];
}

/** The ramp colour at t in [0, 1]. */
export function ramp(t: number): Rgb {
  const x = Math.max(0, Math.min(1, t)) * (STOPS.length - 1);
  const i = Math.min(STOPS.length - 2, Math.floor(x));
  return lerp(STOPS[i] as Rgb, STOPS[i + 1] as Rgb, x - i);
}

export function unchangedColor(dark: boolean): Rgb {
  return dark ? [52, 56, 64] : [226, 229, 234];
}

export function olderColor(dark: boolean): Rgb {
  return dark ? [78, 86, 104] : [184, 192, 206];
}

export function backgroundColor(dark: boolean): Rgb {
  return dark ? [24, 26, 30] : [255, 255, 255];
}

/** The colour of one change number. */
export function colorOf(value: number, options: PaletteOptions): Rgb {
  const { changesNumber, sinceN, dark } = options;
  if (value === 0) return unchangedColor(dark);
  if (sinceN !== null && value <= sinceN) return olderColor(dark);
  const low = sinceN === null ? 1 : sinceN + 1;
  const high = Math.max(low, changesNumber);
  return ramp(high === low ? 1 : (value - low) / (high - low));
}

export function buildPalette(options: PaletteOptions): Uint32Array {
  const lut = new Uint32Array(256);
  for (let v = 0; v < 256; v++) lut[v] = packRgb(colorOf(v, options));
  return lut;
}

export function cssColor([r, g, b]: Rgb): string {
  return `rgb(${r}, ${g}, ${b})`;
}
