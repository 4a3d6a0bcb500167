# The Tenantry host (control plane, gateway replicas with `gateway`) as a container image.
#   docker build -t registry.example/tenantry:0.9.0 .
# Build stage: the full SDK restores and publishes; nothing of it reaches the image that runs.
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
# Restore first, from the project files alone, so a source change does not invalidate the restore layer.
COPY global.json Directory.Build.props Directory.Build.targets Directory.Packages.props ./
COPY src/ src/
COPY samples/ samples/
RUN dotnet restore src/Tenantry.Host/Tenantry.Host.csproj
RUN dotnet publish src/Tenantry.Host/Tenantry.Host.csproj -c Release --no-restore -o /app /p:UseAppHost=false \
    && mkdir -p /data

# Runtime stage: the ASP.NET Core runtime on a chiseled Ubuntu base (no shell, no package manager, no SDK),
# run as the image's unprivileged "app" user (uid 1654); the data folder is made here, owned by that user.
FROM mcr.microsoft.com/dotnet/aspnet:10.0-noble-chiseled AS runtime
WORKDIR /app
COPY --from=build --chown=1654:1654 /app ./
COPY --from=build --chown=1654:1654 /data /var/lib/tenantry
USER 1654:1654
# In a container the listeners bind every address of the pod; state goes to a volume (or PostgreSQL and S3).
ENV Tenantry__ListenAddress=0.0.0.0 \
    Tenantry__DataDir=/var/lib/tenantry \
    DOTNET_gcServer=0
VOLUME /var/lib/tenantry
EXPOSE 5080 5081
ENTRYPOINT ["dotnet", "/app/Tenantry.Host.dll"]
