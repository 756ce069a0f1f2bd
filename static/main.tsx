/** @module The UI's entry point: renders the app into `#app`. */
import { render } from "preact";
import { App } from "./components/App.tsx";

const root = document.getElementById("app")!;
root.textContent = ""; // the shell's "Loading…" placeholder
render(<App />, root);
