/** @module A link that changes page without reloading (a plain link for new tabs and modifiers). */
import type { ComponentChildren } from "preact";
import { navigate } from "../lib/router.ts";

export function Link(
  props: { href: string; class?: string; current?: boolean; children: ComponentChildren },
) {
  return (
    <a
      href={props.href}
      class={props.class}
      aria-current={props.current ? "page" : undefined}
      onClick={(e) => {
        if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
        e.preventDefault();
        navigate(props.href);
      }}
    >
      {props.children}
    </a>
  );
}
