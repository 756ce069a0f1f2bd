/** @module Accounts for admins: the list (`GET /auth/users`), a new account, enable or disable. */
import { useState } from "preact/hooks";
import { api, getJson, ok } from "../lib/api.ts";
import { formatDate } from "../lib/format.ts";
import { useAsync } from "../lib/hooks.ts";
import { ErrorNote } from "./ErrorNote.tsx";

interface User {
  id: string;
  username: string;
  displayName: string | null;
  role: string;
  disabled: boolean;
  lockedUntil: string | null;
  createdAt: string;
}

export function UsersPanel() {
  const users = useAsync((signal) => getJson<User[]>("/auth/users", signal), []);
  const [form, setForm] = useState({
    username: "",
    displayName: "",
    password: "",
    role: "clinician",
  });
  const [error, setError] = useState<string>();
  const send = async (path: string, method: string, body: unknown) => {
    setError(undefined);
    try {
      await ok(
        await api(path, {
          method,
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify(body),
        }),
      );
      users.reload();
      return true;
    } catch (e) {
      setError((e as Error).message);
      return false;
    }
  };
  const set = (k: keyof typeof form) => (e: Event) =>
    setForm({ ...form, [k]: (e.currentTarget as HTMLInputElement).value });
  return (
    <section class="card">
      <h2>Accounts</h2>
      <table class="grid">
        <thead>
          <tr>
            <th scope="col">Username</th>
            <th scope="col">Name</th>
            <th scope="col">Role</th>
            <th scope="col">Created</th>
            <th scope="col">State</th>
          </tr>
        </thead>
        <tbody>
          {(users.data ?? []).map((u) => (
            <tr key={u.id}>
              <td class="mono">{u.username}</td>
              <td>{u.displayName ?? "—"}</td>
              <td>{u.role}</td>
              <td>{formatDate(u.createdAt)}</td>
              <td>
                {u.lockedUntil && new Date(u.lockedUntil) > new Date() ? "locked · " : ""}
                <button
                  type="button"
                  class="small-button"
                  onClick={() => send(`/auth/users/${u.id}`, "PATCH", { disabled: !u.disabled })}
                >
                  {u.disabled ? "Enable" : "Disable"}
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <form
        class="filters"
        aria-label="New account"
        onSubmit={async (e) => {
          e.preventDefault();
          const body = { ...form, displayName: form.displayName || undefined };
          if (await send("/auth/users", "POST", body)) {
            setForm({ username: "", displayName: "", password: "", role: "clinician" });
          }
        }}
      >
        <label>
          Username
          <input required value={form.username} onInput={set("username")} />
        </label>
        <label>
          Display name
          <input value={form.displayName} onInput={set("displayName")} />
        </label>
        <label>
          Password (12+ characters)
          <input
            type="password"
            required
            minLength={12}
            value={form.password}
            onInput={set("password")}
            autocomplete="new-password"
          />
        </label>
        <label>
          Role
          <select value={form.role} onChange={set("role")}>
            <option value="clinician">Clinician</option>
            <option value="viewer">Viewer</option>
            <option value="admin">Admin</option>
          </select>
        </label>
        <div class="filter-actions">
          <button type="submit" class="primary">Add account</button>
        </div>
      </form>
      <ErrorNote error={error ?? users.error} />
    </section>
  );
}
