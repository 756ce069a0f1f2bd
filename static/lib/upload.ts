/**
 * @module Uploads to STOW-RS with XMLHttpRequest, whose upload progress events count the bytes
 * really sent: one request per file (a DICOM file as `application/dicom`, a ZIP as
 * `application/zip`), a few at a time, each with its progress and its store response.
 */
import { authorization, refresh } from "./session.ts";
import { parseStowResponse, type StowSummary } from "./stow_result.ts";
import { errorMessage } from "./api.ts";

export interface UploadItem {
  file: File;
  /** The path inside a dropped folder, or the file name. */
  path: string;
}

export interface UploadProgress {
  sent: number;
  total: number;
}

export interface UploadOutcome {
  status: number;
  summary?: StowSummary;
  error?: string;
}

/** The Content-Type of a file for STOW-RS. */
export function contentTypeOf(name: string): string {
  return /\.zip$/i.test(name) ? "application/zip" : "application/dicom";
}

function send(
  item: UploadItem,
  auth: string | undefined,
  onProgress: (p: UploadProgress) => void,
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/dicomweb/studies");
    xhr.setRequestHeader("Content-Type", contentTypeOf(item.file.name));
    xhr.setRequestHeader("Accept", "application/dicom+json");
    if (auth) xhr.setRequestHeader("Authorization", auth);
    xhr.upload.onprogress = (e) =>
      onProgress({ sent: e.loaded, total: e.lengthComputable ? e.total : item.file.size });
    xhr.upload.onload = () => onProgress({ sent: item.file.size, total: item.file.size });
    xhr.onload = () => resolve({ status: xhr.status, text: xhr.responseText });
    xhr.onerror = () => reject(new Error("network error"));
    xhr.onabort = () => reject(new Error("cancelled"));
    xhr.send(item.file);
  });
}

/** Uploads one file; a refused token is renewed and the file sent again once. */
export async function uploadOne(
  item: UploadItem,
  onProgress: (p: UploadProgress) => void,
): Promise<UploadOutcome> {
  try {
    let res = await send(item, await authorization(), onProgress);
    if (res.status === 401 && await refresh()) {
      res = await send(item, await authorization(), onProgress);
    }
    let body: unknown;
    try {
      body = res.text ? JSON.parse(res.text) : {};
    } catch {
      body = undefined;
    }
    const isStoreResponse = !!body && typeof body === "object" &&
      ("00081199" in body || "00081198" in body);
    if (isStoreResponse) return { status: res.status, summary: parseStowResponse(body) };
    return { status: res.status, error: errorMessage(res.status, res.text) };
  } catch (e) {
    return { status: 0, error: (e as Error).message };
  }
}

/** Runs `work` over `items` with at most `limit` at a time. */
export async function eachLimited<T>(
  items: T[],
  limit: number,
  work: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      await work(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/** The files of a drop: plain files, and every file inside dropped folders (recursively). */
export async function filesOfDrop(data: DataTransfer): Promise<UploadItem[]> {
  const entries = [...data.items]
    .map((i) => i.webkitGetAsEntry?.())
    .filter((e): e is FileSystemEntry => !!e);
  if (!entries.length) return [...data.files].map((file) => ({ file, path: file.name }));
  const out: UploadItem[] = [];
  const walk = async (entry: FileSystemEntry): Promise<void> => {
    if (entry.isFile) {
      const file = await new Promise<File>((res, rej) =>
        (entry as FileSystemFileEntry).file(res, rej)
      );
      out.push({ file, path: entry.fullPath.replace(/^\//, "") });
    } else if (entry.isDirectory) {
      const reader = (entry as FileSystemDirectoryEntry).createReader();
      while (true) {
        const batch = await new Promise<FileSystemEntry[]>((res, rej) =>
          reader.readEntries(res, rej)
        );
        if (!batch.length) break;
        for (const e of batch) await walk(e);
      }
    }
  };
  for (const e of entries) await walk(e);
  return out;
}

/** Leaves out files no one means to upload (hidden files, DICOMDIR index files). */
export function wanted(item: UploadItem): boolean {
  const name = item.path.split("/").pop() ?? "";
  return !name.startsWith(".") && name.toUpperCase() !== "DICOMDIR";
}
