/** @module Saves an API answer as a file: the token cannot ride on a plain link, so fetch, then a blob URL. */
import { api, ok } from "./api.ts";

/** Downloads an API path as a file named `filename` (the token cannot ride on a plain link). */
export async function download(path: string, filename: string): Promise<void> {
  const res = await ok(await api(path));
  const url = URL.createObjectURL(await res.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
